/**
 * The docs are kept in step with the code: the reply tables of
 * docs/PROTOCOL.md list exactly the replies of src/core/replies.ts, the
 * table of docs/ERRORS.md exactly the codes of src/errors.ts, and both
 * READMEs show the commands a new user runs.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ALL_REPLIES } from '../../src/core/replies.js';
import { ERROR_CODES } from '../../src/errors.js';

/** The compiled test runs from dist/test/docs/, three levels below the repository root. */
function readRepoFile(path: string): string {
  return readFileSync(fileURLToPath(new URL(`../../../${path}`, import.meta.url)), 'utf8');
}

function isTableLine(line: string): boolean {
  return line.trimStart().startsWith('|');
}

/** The cells of a table line, trimmed; `\|` inside a cell is not a separator. */
function cellsOf(line: string): string[] {
  return line
    .trim()
    .replace(/^\|/, '')
    .replace(/(?<!\\)\|$/, '')
    .split(/(?<!\\)\|/)
    .map((cell) => cell.trim());
}

/**
 * The body rows of the one table whose header cells are exactly `header`
 * (padding around the cells does not matter, so a formatter may align them).
 */
function tableRows(markdown: string, header: readonly string[]): string[][] {
  const lines = markdown.split('\n');
  const starts = lines.flatMap((line, index) =>
    isTableLine(line) && cellsOf(line).join('|') === header.join('|') ? [index] : [],
  );
  const title = `| ${header.join(' | ')} |`;
  assert.equal(starts.length, 1, `exactly one table with the header ${title}`);
  const start = starts[0]!;
  assert.match(lines[start + 1] ?? '', /^\s*\|(\s*:?-+:?\s*\|)+\s*$/, `delimiter row of ${title}`);
  const rows: string[][] = [];
  for (let index = start + 2; index < lines.length && isTableLine(lines[index]!); index++) {
    const row = cellsOf(lines[index]!);
    assert.equal(row.length, header.length, `cells in the row '${lines[index]}'`);
    for (const cell of row) assert.notEqual(cell, '', `empty cell in the row '${lines[index]}'`);
    rows.push(row);
  }
  assert.ok(rows.length > 0, `${title} has rows`);
  return rows;
}

/** `DRCV` for a cell written `` `DRCV` ``. */
function unquote(cell: string): string {
  return cell.replace(/^`(.*)`$/, '$1');
}

interface DocumentedReply {
  readonly code: number;
  readonly token: string;
  readonly when: string;
  readonly then: string | null;
}

function documentedReply([code, token, when, then]: string[]): DocumentedReply {
  assert.match(code!, /^[0-9]{3}$/, `the code cell holds a bare 3-digit number, got '${code}'`);
  return { code: Number(code), token: unquote(token!), when: when!, then: then ?? null };
}

const byCode = (a: { code: number }, b: { code: number }): number => a.code - b.code;

describe('docs/PROTOCOL.md reply tables against src/core/replies.ts', () => {
  const protocol = readRepoFile('docs/PROTOCOL.md');
  const core = tableRows(protocol, ['code', 'token', 'when']).map(documentedReply);
  const extensions = tableRows(protocol, ['code', 'token', 'when', 'then']).map(documentedReply);

  it('documents every reply helo sends, and no other', () => {
    const documented = [...core, ...extensions]
      .sort(byCode)
      .map(({ code, token }) => `${code} ${token}`);
    const sent = [...ALL_REPLIES].sort(byCode).map(({ code, token }) => `${code} ${token}`);
    assert.deepEqual(documented, sent);
  });

  it("says in the extension table's then column whether the server closes", () => {
    for (const { code, token, then } of extensions) {
      assert.ok(
        then === 'session goes on' || then === 'server closes',
        `${code} ${token}: then must be 'session goes on' or 'server closes', got '${then}'`,
      );
      const reply = ALL_REPLIES.find((candidate) => candidate.code === code);
      assert.equal(then === 'server closes', reply?.closes, `${code} ${token} closes`);
    }
  });

  it("says 'server closes' in the core table exactly for the core replies that close", () => {
    for (const { code, token, when } of core) {
      const reply = ALL_REPLIES.find((candidate) => candidate.code === code);
      assert.equal(when.includes('server closes'), reply?.closes, `${code} ${token}: ${when}`);
    }
  });
});

describe('docs/ERRORS.md against src/errors.ts', () => {
  it('lists exactly the codes of ERROR_CODES', () => {
    const rows = tableRows(readRepoFile('docs/ERRORS.md'), ['code', 'meaning']);
    const documented = rows.map(([code]) => unquote(code!)).sort();
    assert.deepEqual(documented, Object.keys(ERROR_CODES).sort());
  });
});

/** The commands in the ```sh blocks: `$ ` lines where there are any, else every line. */
function shellCommands(markdown: string): string[] {
  const commands: string[] = [];
  for (const [, body] of markdown.matchAll(/^```sh\n([\s\S]*?)^```$/gm)) {
    const lines = body!.split('\n').filter((line) => line.trim() !== '');
    const prompted = lines.filter((line) => line.startsWith('$ '));
    const shown = prompted.length > 0 ? prompted.map((line) => line.slice(2)) : lines;
    // A trailing `# comment` is prose, translated with the rest.
    commands.push(...shown.map((line) => line.replace(/\s+#\s.*$/, '')));
  }
  return commands;
}

describe('README.md and README.es.md', () => {
  const readme = readRepoFile('README.md');
  const spanish = readRepoFile('README.es.md');

  it('show how to start the server and how to run the tests', () => {
    for (const [name, text] of [
      ['README.md', readme],
      ['README.es.md', spanish],
    ] as const) {
      assert.ok(
        text.includes('npm install && npm start'),
        `${name} shows npm install && npm start`,
      );
      assert.ok(text.includes('npm install && npm test'), `${name} shows npm install && npm test`);
    }
  });

  it('show the same commands in both languages', () => {
    const commands = shellCommands(readme);
    assert.ok(commands.length > 0, 'README.md has shell commands');
    assert.deepEqual(shellCommands(spanish), commands);
  });
});
