/**
 * A Markdown table, padded the way prettier formats one, so that the
 * benchmark reports read well in a terminal and the documents they write
 * stay prettier-clean. Pure.
 */

export type Align = 'left' | 'right';

export function markdownTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  align: readonly Align[],
): string {
  const widths = header.map((title, column) =>
    Math.max(3, title.length, ...rows.map((row) => (row[column] ?? '').length)),
  );
  const pad = (cell: string, column: number): string =>
    align[column] === 'right' ? cell.padStart(widths[column]!) : cell.padEnd(widths[column]!);
  const line = (cells: readonly string[]): string =>
    `| ${header.map((_, column) => pad(cells[column] ?? '', column)).join(' | ')} |`;
  const rule = `| ${widths
    .map((width, column) =>
      align[column] === 'right' ? `${'-'.repeat(width - 1)}:` : '-'.repeat(width),
    )
    .join(' | ')} |`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}

/** 12,345 */
export function formatCount(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

/** Milliseconds with about three significant digits: 0.412, 3.27, 48.1, 1,250. */
export function formatMs(ms: number): string {
  if (ms < 1) return ms.toFixed(3);
  if (ms < 10) return ms.toFixed(2);
  if (ms < 100) return ms.toFixed(1);
  return formatCount(ms);
}
