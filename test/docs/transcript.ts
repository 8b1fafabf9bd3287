/**
 * The pieces of the tour's transcript test (tour-transcripts.test.ts) that
 * need no process: finding the marked blocks of a tour, comparing a block
 * with what a command really printed by shape, and turning what a program
 * wrote on a terminal into the lines a reader sees.
 *
 * A transcript block is a fenced code block right after a comment
 * `<!-- transcript: DIRECTIVES -->`; the directives are listed with
 * `parseDirectives()`.
 */

/** One fenced code block of a markdown file. */
export interface FencedBlock {
  /** The info string after the fence (`sh`, or empty). */
  readonly lang: string;
  readonly lines: readonly string[];
  /** 1-based line number of the opening fence, for messages. */
  readonly line: number;
  /** The text of `<!-- transcript: ... -->` just before the fence, if any. */
  readonly marker: string | null;
  /** The `## ` heading the block is under. */
  readonly chapter: string;
}

export function fencedBlocks(markdown: string): FencedBlock[] {
  const lines = markdown.split('\n');
  const blocks: FencedBlock[] = [];
  let chapter = '';
  for (let index = 0; index < lines.length; index++) {
    const line = lines[index]!;
    if (line.startsWith('## ')) chapter = line.slice(3);
    const fence = /^```([a-z]*)$/.exec(line);
    if (!fence) continue;
    const end = lines.findIndex((candidate, at) => at > index && candidate === '```');
    if (end === -1) throw new Error(`unclosed code block at line ${index + 1}`);
    // Prettier puts a blank line between the comment and the fence.
    const before = lines[index - 1] === '' ? lines[index - 2] : lines[index - 1];
    const marker = /^<!-- transcript: (.*) -->$/.exec(before ?? '');
    blocks.push({
      lang: fence[1]!,
      lines: lines.slice(index + 1, end),
      line: index + 1,
      marker: marker ? marker[1]! : null,
      chapter,
    });
    index = end;
  }
  return blocks;
}

/** A command the reader types and the lines shown after it, up to the next command. */
export interface TypedCommand {
  readonly command: string;
  readonly expected: readonly string[];
}

/**
 * The `$ ` commands of a block with what each printed. A command whose
 * single quotes are not balanced goes on over the next lines (`node -e '…'`).
 */
export function typedCommands(lines: readonly string[]): TypedCommand[] {
  const commands: { command: string; expected: string[] }[] = [];
  for (let index = 0; index < lines.length; index++) {
    const line = lines[index]!;
    if (line.startsWith('$ ')) {
      let command = line.slice(2);
      while (quotesOpen(command) && index + 1 < lines.length) command += `\n${lines[++index]}`;
      commands.push({ command, expected: [] });
    } else if (commands.length > 0) {
      commands.at(-1)!.expected.push(line);
    }
  }
  return commands;
}

function quotesOpen(text: string): boolean {
  return (text.match(/'/g) ?? []).length % 2 === 1;
}

/** Whether a block shows something a program printed (and so must be checked or skipped). */
export function showsOutput(block: FencedBlock): boolean {
  if (block.lang === 'sh') return typedCommands(block.lines).some((c) => c.expected.length > 0);
  return block.lines.some((line) => /^(\$ |C: ?|S: |\{"level")/.test(line));
}

/** What a marker asks for (see the test file's header for what each one does). */
export interface Directives {
  readonly skip: string | null;
  readonly run: boolean;
  readonly serverLog: boolean;
  readonly backgroundOutput: boolean;
  readonly numbersVary: boolean;
  readonly clientsFirst: number;
  readonly killServerAfter: boolean;
  readonly clientBeforeServer: boolean;
  /** A pid written in the block that stands for the running server's. */
  readonly serverPid: string | null;
}

export function parseDirectives(marker: string): Directives {
  const parts = marker.split(';').map((part) => part.trim());
  const known = [
    /^skip: .+$/,
    /^run$/,
    /^server log$/,
    /^output of the command left running$/,
    /^numbers vary$/,
    /^(another client|two clients) connected first$/,
    /^server killed \(kill -9\) after the input$/,
    /^the client above, started before the server$/,
    /^\d+ is the server's pid$/,
  ];
  for (const part of parts) {
    if (!known.some((pattern) => pattern.test(part))) {
      throw new Error(`unknown transcript directive '${part}'`);
    }
  }
  const has = (text: string): boolean => parts.includes(text);
  const skip = parts.find((part) => part.startsWith('skip: '));
  return {
    skip: skip === undefined ? null : skip.slice('skip: '.length),
    run: has('run'),
    serverLog: has('server log'),
    backgroundOutput: has('output of the command left running'),
    numbersVary: has('numbers vary'),
    clientsFirst: has('two clients connected first')
      ? 2
      : has('another client connected first')
        ? 1
        : 0,
    killServerAfter: has('server killed (kill -9) after the input'),
    clientBeforeServer: has('the client above, started before the server'),
    serverPid:
      parts.map((part) => /^(\d+) is the server's pid$/.exec(part)?.[1]).find(Boolean) ?? null,
  };
}

/**
 * A line with what changes from run to run replaced by placeholders:
 * times, dates, durations, session ids, pids and ephemeral ports (the
 * tour's own 4-digit ports stay). Runs of blanks count as one blank, since
 * columns are padded to the width of what varies.
 */
export function normalize(line: string, numbersVary: boolean): string {
  let text = line
    .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z/g, '<time>')
    .replace(/\b[A-Z][a-z]{2} +\d{1,2} +\d\d:\d\d\b/g, '<date>')
    .replace(/\b[0-9a-f]{8}-\d+\b/g, '<session>')
    .replace(/"(pid|childPid|durationMs)":\d+/g, '"$1":<n>')
    .replace(/\b(pid|fd)=\d+/g, '$1=<n>')
    .replace(/\b\d+(\.\d+)? (ms|µs|s)\b/g, '<n> $2')
    .replace(/\b[1-6]\d{4}\b/g, '<port>');
  if (numbersVary) text = text.replace(/\d+([.,]\d+)*|<port>/g, '<n>');
  return text.replace(/\s+/g, ' ').trim();
}

const ELLIPSIS = '…';

/** A line of the doc as a pattern: `…` inside a line stands for anything. */
function linePattern(line: string): RegExp {
  const parts = line.split(ELLIPSIS).map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${parts.join('.*?')}$`);
}

/**
 * Whether `actual` has the shape of `expected` (both normalized): line by
 * line, where a doc line that is only `…` stands for any number of lines.
 * With `subset`, the doc's lines need only appear in order among others
 * (a log the doc shows a few lines of).
 */
export function matchesShape(
  expected: readonly string[],
  actual: readonly string[],
  options: { numbersVary?: boolean; subset?: boolean } = {},
): boolean {
  const numbersVary = options.numbersVary ?? false;
  const want = trimBlankEnds(expected).map((line) =>
    line.trim() === ELLIPSIS ? null : linePattern(normalize(line, numbersVary)),
  );
  const got = trimBlankEnds(actual).map((line) => normalize(line, numbersVary));
  const match = (w: number, g: number): boolean => {
    if (w === want.length) return options.subset === true || g === got.length;
    const pattern = want[w];
    if (pattern === null || options.subset === true) {
      for (let next = g; next <= got.length; next++) {
        if (pattern === null || pattern === undefined) {
          if (match(w + 1, next)) return true;
        } else if (next < got.length && pattern.test(got[next]!) && match(w + 1, next + 1)) {
          return true;
        }
      }
      return false;
    }
    return g < got.length && pattern!.test(got[g]!) && match(w + 1, g + 1);
  };
  return match(0, 0);
}

function trimBlankEnds(lines: readonly string[]): string[] {
  const out = [...lines];
  while (out.length > 0 && out[0]!.trim() === '') out.shift();
  while (out.length > 0 && out.at(-1)!.trim() === '') out.pop();
  return out;
}

/**
 * What a terminal shows after `raw` was written to it: the cursor moves and
 * erasures readline uses (CSI G, J, K, A to D) applied, other escapes
 * dropped, trailing blanks removed.
 */
export function renderTerminal(raw: string): string[] {
  const screen: string[] = [''];
  let row = 0;
  let col = 0;
  const put = (char: string): void => {
    const line = screen[row]!.padEnd(col, ' ');
    screen[row] = line.slice(0, col) + char + line.slice(col + 1);
    col++;
  };
  for (let at = 0; at < raw.length; at++) {
    const char = raw[at]!;
    if (char === '\x1b') {
      // eslint-disable-next-line no-control-regex -- the escape readline writes
      const csi = /^\x1b\[([?0-9;]*)([A-Za-z])/.exec(raw.slice(at, at + 16));
      if (!csi) continue;
      at += csi[0].length - 1;
      const [, params, final] = csi;
      if (params!.startsWith('?')) continue;
      const n = Number(params || '0');
      if (final === 'G') col = Math.max(0, n - 1);
      else if (final === 'C') col += n || 1;
      else if (final === 'D') col = Math.max(0, col - (n || 1));
      else if (final === 'A') row = Math.max(0, row - (n || 1));
      else if (final === 'B') row += n || 1;
      else if (final === 'K' && n === 2) screen[row] = '';
      else if (final === 'K' || final === 'J') screen[row] = screen[row]!.slice(0, col);
      if (final === 'J') screen.length = row + 1;
      while (screen.length <= row) screen.push('');
    } else if (char === '\r') {
      col = 0;
    } else if (char === '\n') {
      row++;
      while (screen.length <= row) screen.push('');
    } else if (char === '\x07') {
      continue;
    } else {
      put(char);
    }
  }
  return trimBlankEnds(screen.map((line) => line.trimEnd()));
}
