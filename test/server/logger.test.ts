/**
 * Logs are buffered off the hot path (src/server/logger.ts: pino with
 * `minLength`), yet no line is lost: what was logged before a SIGTERM,
 * a SIGINT or an uncaught exception still reaches stderr.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, openSync, readFileSync, rmSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { startServerProcess } from '../../support/server-process.js';
import { createLogger, logSessionClosed } from '../../src/server/logger.js';
import type { ConnectionSummary } from '../../src/server/connection.js';
import { RawClient } from '../helpers/raw-client.js';

const LOGGER_MODULE = fileURLToPath(new URL('../../src/server/logger.js', import.meta.url));

/** Runs an ES module `script` in a new node; resolves with its exit code and what it wrote to `stream`. */
async function runScript(
  script: string,
  stream: 'stdout' | 'stderr',
): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: [
      'ignore',
      stream === 'stdout' ? 'pipe' : 'ignore',
      stream === 'stderr' ? 'pipe' : 'inherit',
    ],
  });
  let output = '';
  child[stream]!.setEncoding('utf8').on('data', (text: string) => (output += text));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, output };
}

describe('buffered logs', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`keep the summary of a session that ended just before ${signal}`, async () => {
      const server = startServerProcess(['--store', 'memory:']);
      try {
        const port = await server.listening;
        const client = await RawClient.open(port);
        client.write('HELO logs\r\nDATA kept\r\nQUIT\r\n');
        await client.untilEnded();
        client.close();
        // The summary line (about 250 bytes) is far below the 32 KiB buffer:
        // only the flush at exit can write it out.
        assert.equal(await server.stop(signal), 0);
        const summaries = server
          .stderr()
          .split('\n')
          .filter((line) => line.includes('"session closed"'))
          .map((line) => JSON.parse(line) as Record<string, unknown>);
        assert.equal(summaries.length, 1, server.stderr());
        assert.equal(summaries[0]!.reason, 'quit');
        assert.equal(summaries[0]!.payloads, 1);
      } finally {
        await server.stop('SIGKILL');
      }
    });
  }

  // Issue 16: one summary line per session, each in its own turn of the
  // event loop, was one write(2) per line on a thread-pool thread.
  it('gather lines logged in separate turns of the event loop into few writes', async () => {
    const script = `
      import fs from 'node:fs';
      const { createLogger } = await import(${JSON.stringify(LOGGER_MODULE)});
      let writes = 0;
      const write = fs.write;
      fs.write = (...args) => { writes++; return write(...args); };
      const logger = createLogger('info', fs.openSync('/dev/null', 'w'));
      for (let i = 0; i < 20; i++) {
        logger.info({ session: i }, 'session closed');
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
      process.stdout.write(String(writes));`;
    const { code, output: stdout } = await runScript(script, 'stdout');
    assert.equal(code, 0);
    // 20 before buffering; after, one per 20 ms (FLUSH_AFTER_MS) and a first empty flush.
    assert.ok(Number(stdout) <= 5, `20 lines took ${stdout} writes`);
  });

  // Issue 16: SonicBoom, given strings, appends each line to one string and
  // measures that string's byte length at every write, which copies the
  // whole buffer (up to 32 KiB) per line: about 20 KiB per session summary
  // under load, the largest allocation of a whole session. Counted with V8's
  // allocation sampling, which also sees the short-lived copies.
  it('allocate about one line per line logged, whatever is already buffered', async () => {
    const script = `
      import fs from 'node:fs';
      import { Session } from 'node:inspector/promises';
      const { createLogger } = await import(${JSON.stringify(LOGGER_MODULE)});
      const logger = createLogger('info', fs.openSync('/dev/null', 'w'));
      const session = new Session();
      session.connect();
      await session.post('HeapProfiler.startSampling', {
        samplingInterval: 1024,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: true,
      });
      const lines = 2000;
      for (let i = 0; i < lines; i++) {
        logger.info({ session: 'd167ba8b-' + i, peer: '127.0.0.1:' + (40000 + i), payloads: 1,
          bytesIn: 28, bytesOut: 25, reason: 'quit' }, 'session closed');
      }
      const { profile } = await session.post('HeapProfiler.stopSampling');
      let bytes = 0;
      const visit = (node) => { bytes += node.selfSize; node.children.forEach(visit); };
      visit(profile.head);
      process.stdout.write(String(Math.round(bytes / lines)));`;
    const { code, output: stdout } = await runScript(script, 'stdout');
    assert.equal(code, 0);
    // A line is about 230 bytes; pino's own work a few times that. Before: over 10 KiB.
    assert.ok(Number(stdout) < 4096, `${stdout} bytes allocated per line logged`);
  });

  it('keep the lines logged before an uncaught exception', async () => {
    const script = `
      const { createLogger } = await import(${JSON.stringify(LOGGER_MODULE)});
      const logger = createLogger('info');
      logger.info('logged earlier');
      setTimeout(() => {
        logger.fatal('logged in the failing turn');
        throw new Error('uncaught on purpose');
      }, 10);`;
    const { code, output: stderr } = await runScript(script, 'stderr');
    assert.equal(code, 1);
    assert.match(stderr, /"msg":"logged earlier"/);
    assert.match(stderr, /"msg":"logged in the failing turn"/);
    assert.match(stderr, /uncaught on purpose/);
  });

  // CI, 2026-12-07: a session summary logged while the warning before it was
  // still being written stayed in the buffer for good (the timer had fired
  // during the write, when flushing does nothing).
  it('write out a line logged while an earlier write is still in progress', async () => {
    const script = `
      const { createLogger } = await import(${JSON.stringify(LOGGER_MODULE)});
      const logger = createLogger('info', 1);
      // Bigger than the pipe holds: this write lasts until the parent reads.
      logger.warn({ filler: 'x'.repeat(1024 * 1024) }, 'a long warning');
      logger.info('logged during the write');
      setTimeout(() => {}, 5_000);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      child.stdout.pause();
      await delay(300);
      let stdout = '';
      child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
      child.stdout.resume();
      for (let tries = 0; tries < 100 && !stdout.includes('during the write'); tries++) {
        await delay(20);
      }
      assert.match(stdout, /"msg":"a long warning"/);
      assert.match(stdout, /"msg":"logged during the write"/);
    } finally {
      child.kill('SIGKILL');
    }
  });

  // Issue 16: the session summary is made by a template (logSessionClosed),
  // not by pino's serializer; whoever reads the logs must not see a difference.
  it('write the session summary exactly as pino writes it', async () => {
    const text = fc.oneof(
      fc.string(),
      fc.string({ unit: 'binary' }),
      fc.constantFrom('', '"', '\\', '\n'),
    );
    const count = fc.oneof(fc.nat(), fc.integer(), fc.double());
    const summaries = fc.sample(
      fc.record(
        {
          session: text,
          peer: text,
          transport: text,
          durationMs: count,
          commands: count,
          payloads: count,
          failedPayloads: count,
          bytesIn: count,
          bytesOut: count,
          reason: text,
          proxy: text,
        },
        {
          requiredKeys: [
            'session',
            'peer',
            'transport',
            'durationMs',
            'commands',
            'payloads',
            'failedPayloads',
            'bytesIn',
            'bytesOut',
            'reason',
          ],
        },
      ),
      { numRuns: 400, seed: 16 },
    ) as unknown as ConnectionSummary[];
    const folder = mkdtempSync(join(tmpdir(), 'helo-log-'));
    const fd = openSync(join(folder, 'log'), 'w');
    try {
      const logger = createLogger('info', fd);
      for (const summary of summaries) {
        logger.info(summary, 'session closed');
        logSessionClosed(logger, summary);
      }
      await new Promise<void>((resolve) => logger.flush(() => resolve()));
      const lines = readFileSync(join(folder, 'log'), 'utf8').split('\n');
      assert.equal(lines.length, 2 * summaries.length + 1);
      // The time may tick between the two lines of a pair; nothing else may differ.
      const untimed = (line: string): string => line.replace(/"time":"[^"]*"/, '"time":""');
      for (let i = 0; i < summaries.length; i++) {
        assert.equal(
          untimed(lines[2 * i + 1]!),
          untimed(lines[2 * i]!),
          JSON.stringify(summaries[i]),
        );
      }
    } finally {
      // The logger's flush timer (20 ms) still holds the descriptor: let it run first.
      await delay(60);
      closeSync(fd);
      rmSync(folder, { recursive: true, force: true });
    }
  });
});
