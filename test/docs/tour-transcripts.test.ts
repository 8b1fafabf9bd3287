/**
 * The transcripts of the guided tour are what the program prints today:
 * every code block of docs/TOUR.md and docs/TOUR.es.md that shows output
 * is marked `<!-- transcript: ... -->`, and the marked blocks are run for
 * real (tour-runner.ts: real servers on ephemeral loopback ports, real
 * clients, interactive ones on a terminal) and compared by shape
 * (transcript.ts: times, dates, durations, session ids, pids and ephemeral
 * ports normalized; everything else exact, blank runs counting as one).
 *
 * The directives of a marker, separated by `;`:
 *   run                          run the block's `$ ` commands in order, and
 *                                compare what each printed with the lines
 *                                under it; a `helo server` replaces the
 *                                running one, and a command still running
 *                                once its lines are printed is left running
 *   server log                   the block's lines appear, in order, in the
 *                                running server's log
 *   output of the command left running   the next lines of the last
 *                                command left running (the UDP relay)
 *   numbers vary                 every number is a placeholder (bench, ps, ss)
 *   another client connected first / two clients connected first
 *                                raw clients send HELO before the block runs
 *                                and QUIT 3 s after the block starts
 *   server killed (kill -9) after the input   the crash of chapter 8
 *   the client above, started before the server   chapter 1's --wait
 *   NNNN is the server's pid     NNNN in the block stands for the real pid
 *   skip: REASON                 not run, for the reason given
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  fencedBlocks,
  matchesShape,
  normalize,
  parseDirectives,
  renderTerminal,
  showsOutput,
} from './transcript.js';
import { TourRunner } from './tour-runner.js';

const TOURS = ['docs/TOUR.md', 'docs/TOUR.es.md'] as const;

function readRepoFile(path: string): string {
  return readFileSync(fileURLToPath(new URL(`../../../${path}`, import.meta.url)), 'utf8');
}

describe('the shape comparison of transcripts', () => {
  it('normalizes what changes from run to run, and nothing else', () => {
    const line =
      '{"level":30,"time":"2026-11-23T13:49:21.185Z","pid":7011,"session":"f419065c-1","peer":"127.0.0.1:38764","durationMs":12}';
    assert.equal(
      normalize(line, false),
      '{"level":30,"time":"<time>","pid":<n>,"session":"<session>","peer":"127.0.0.1:<port>","durationMs":<n>}',
    );
    assert.equal(normalize('S: 100 OK   (3.1 ms)', false), 'S: 100 OK (<n> ms)');
    assert.equal(
      normalize('helo server listening on tcp://127.0.0.1:7777', false),
      'helo server listening on tcp://127.0.0.1:7777',
    );
  });

  it('matches `…` inside a line and as a line, and fails on a changed line', () => {
    const actual = ['a 1', 'b {"x":1,"y":2}', 'c', 'd'];
    assert.ok(matchesShape(['a 1', 'b {…"y":2}', '…', 'd'], actual));
    assert.ok(!matchesShape(['a 1', 'b {…"y":3}', '…', 'd'], actual));
    assert.ok(!matchesShape(['a 1', 'c', 'd'], actual), 'a missing line is a drift');
    assert.ok(matchesShape(['b {…}', 'd'], actual, { subset: true }));
  });

  it('renders what readline writes on a terminal', () => {
    const raw =
      'connected\r\n\x1b[1G\x1b[0JC: \x1b[4GHELO\r\r\nS: 100 OK   (4.0 ms)\r\n\x1b[1G\x1b[0JC: \x1b[4G\x1b[2K\x1b[1GS: 408 TOUT\r\n';
    assert.deepEqual(renderTerminal(raw), [
      'connected',
      'C: HELO',
      'S: 100 OK   (4.0 ms)',
      'S: 408 TOUT',
    ]);
  });
});

for (const path of TOURS) {
  describe(`the transcripts of ${path}`, () => {
    const blocks = fencedBlocks(readRepoFile(path));

    it('marks every block that shows output, with known directives', () => {
      const unmarked = blocks.filter((block) => showsOutput(block) && block.marker === null);
      assert.deepEqual(
        unmarked.map((block) => `line ${block.line}: ${block.lines[0]}`),
        [],
        'blocks that show output need <!-- transcript: ... -->',
      );
      const marked = blocks.filter((block) => block.marker !== null);
      for (const block of marked) parseDirectives(block.marker!);
      const skipped = marked.filter((block) => parseDirectives(block.marker!).skip !== null);
      assert.ok(marked.length >= 30, `${path}: ${marked.length} transcript blocks`);
      // A skip says where else its output is checked (test:deploy, the two-hosts
      // test, chapter 9); more than a handful would make the tour untested.
      assert.ok(skipped.length <= 8, `${path}: at most 8 blocks skipped, got ${skipped.length}`);
    });

    it('shows what the commands print today', { timeout: 300_000 }, async () => {
      const runner = new TourRunner();
      await runner.init();
      try {
        for (const block of blocks) await runner.block(block);
      } finally {
        await runner.close();
      }
      const report = runner.mismatches.map(
        ({ line, command, expected, actual }) =>
          `${path}:${line}: $ ${command.split('\n')[0]}\n--- the tour shows\n${expected.join('\n')}\n--- the program printed\n${actual.join('\n')}`,
      );
      assert.equal(report.length, 0, report.join('\n\n'));
    });
  });
}
