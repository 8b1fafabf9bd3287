/**
 * `npm run bench:slowloris`: what hundreds of slowloris connections cost a
 * normal client. One event-loop `helo server --store memory:` serves normal
 * clients doing whole sessions (HELO, DATA, QUIT, each reply awaited), first
 * alone, then next to N connections that each dribble one byte of a line
 * that never ends (a byte per second by default), in alternating rounds on
 * the same server in the same run. Reports the session latency (p50, p99,
 * max) of both phases and their ratio. (What an idle connection costs in
 * memory is `npm run bench:memory`.)
 *
 * The idle timeout is left at its default (300 s), longer than the run, so
 * the slowloris connections stay for the whole "with" phase: what is
 * measured is their cost while they are there. (That they are then cut off
 * with 408 TOUT is test/server/slowloris.test.ts.)
 *
 * Usage: npm run bench:slowloris -- [--connections N] [--byte-every-ms MS]
 *          [--rounds N] [--duration S] [--clients N] [--json]
 */
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { startChildServer } from '../src/loadgen/child-server.js';
import { LineClient } from './line-client.js';
import { describeMachine, loadAverage, machineLines } from './machine.js';
import { formatCount, formatMs, markdownTable } from './markdown-table.js';

const HELO_BIN = fileURLToPath(new URL('../../bin/helo', import.meta.url));
const HOST = '127.0.0.1';
const REPLY_TIMEOUT_MS = 10_000;
const SERVER_ARGS = ['server', '--port', '0', '--store', 'memory:', '--log-level', 'warn'];

interface Settings {
  readonly connections: number;
  readonly byteEveryMs: number;
  readonly rounds: number;
  readonly durationMs: number;
  readonly clients: number;
  readonly json: boolean;
}

function settingsFromArgs(): Settings {
  const { values } = parseArgs({
    options: {
      connections: { type: 'string', default: '500' },
      'byte-every-ms': { type: 'string', default: '1000' },
      rounds: { type: 'string', default: '3' },
      duration: { type: 'string', default: '3' },
      clients: { type: 'string', default: '4' },
      json: { type: 'boolean', default: false },
    },
  });
  const positive = (name: string, raw: string): number => {
    const value = Number(raw);
    if (!(value > 0)) throw new Error(`--${name} must be a positive number, got '${raw}'`);
    return value;
  };
  return {
    connections: Math.round(positive('connections', values.connections)),
    byteEveryMs: positive('byte-every-ms', values['byte-every-ms']),
    rounds: Math.round(positive('rounds', values.rounds)),
    durationMs: positive('duration', values.duration) * 1000,
    clients: Math.round(positive('clients', values.clients)),
    json: values.json,
  };
}

/** N connections that each send one byte every `byteEveryMs`, never a LF. */
class Slowloris {
  readonly #clients: LineClient[] = [];
  readonly #timers: NodeJS.Timeout[] = [];
  /** Slowloris connections the server closed while they were meant to stay (read before close()). */
  lost = 0;

  static async open(port: number, count: number, byteEveryMs: number): Promise<Slowloris> {
    const attack = new Slowloris();
    const batch = 100;
    for (let opened = 0; opened < count; opened += batch) {
      const size = Math.min(batch, count - opened);
      const clients = await Promise.all(
        Array.from({ length: size }, () => LineClient.open(port, HOST)),
      );
      for (const client of clients) {
        attack.#clients.push(client);
        void client.closed.then(() => attack.lost++);
        // Spread over the interval, so that the bytes arrive evenly, not in bursts.
        const start = setTimeout(() => {
          const timer = setInterval(() => {
            if (!client.isEnded) client.send('x');
          }, byteEveryMs);
          attack.#timers.push(timer);
        }, Math.random() * byteEveryMs);
        attack.#timers.push(start);
      }
    }
    return attack;
  }

  close(): void {
    for (const timer of this.#timers) clearTimeout(timer);
    for (const client of this.#clients) client.destroy();
  }
}

/** One lab session, each reply awaited; resolves with its duration in microseconds. */
async function session(port: number, index: number): Promise<number> {
  const startedAt = performance.now();
  const client = await LineClient.open(port, HOST, REPLY_TIMEOUT_MS);
  try {
    client.send('HELO bench\r\n');
    await client.expect('100 OK\r\n', REPLY_TIMEOUT_MS, 'HELO');
    client.send(`DATA\r\npayload ${index}\r\n`);
    await client.expect('300 DRCV\r\n', REPLY_TIMEOUT_MS, 'DATA');
    client.send('QUIT\r\n');
    await client.expect('200 BYE\r\n', REPLY_TIMEOUT_MS, 'QUIT');
    await client.expectEnd(REPLY_TIMEOUT_MS);
  } finally {
    client.destroy();
  }
  return (performance.now() - startedAt) * 1000;
}

/** `clients` loops of back-to-back sessions for `durationMs`; latencies in µs. */
async function measure(
  port: number,
  settings: Settings,
  durationMs: number,
  into: RecordableHistogram,
): Promise<number> {
  const endAt = performance.now() + durationMs;
  let sessions = 0;
  await Promise.all(
    Array.from({ length: settings.clients }, async () => {
      while (performance.now() < endAt) {
        into.record(Math.max(1, Math.round(await session(port, sessions))));
        sessions++;
      }
    }),
  );
  return sessions;
}

interface PhaseResult {
  readonly sessions: number;
  readonly seconds: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

function phaseResult(histogram: RecordableHistogram, sessions: number, ms: number): PhaseResult {
  return {
    sessions,
    seconds: ms / 1000,
    p50Ms: histogram.percentile(50) / 1000,
    p99Ms: histogram.percentile(99) / 1000,
    maxMs: histogram.max / 1000,
  };
}

async function main(): Promise<void> {
  const settings = settingsFromArgs();
  const machine = describeMachine();
  const note = (text: string): void => void process.stderr.write(`${text}\n`);
  const server = await startChildServer({ name: 'helo server', args: [HELO_BIN, ...SERVER_ARGS] });
  try {
    note(`warming up (1 s of sessions) on port ${server.port}`);
    await measure(server.port, settings, 1_000, createHistogram());
    const without = createHistogram();
    const withAttack = createHistogram();
    let sessionsWithout = 0;
    let sessionsWith = 0;
    let lost = 0;
    for (let round = 1; round <= settings.rounds; round++) {
      note(`round ${round}/${settings.rounds}: ${settings.durationMs / 1000} s without`);
      sessionsWithout += await measure(server.port, settings, settings.durationMs, without);
      const attack = await Slowloris.open(server.port, settings.connections, settings.byteEveryMs);
      // Let every slowloris connection send its first bytes before measuring.
      await sleep(settings.byteEveryMs);
      note(
        `round ${round}/${settings.rounds}: ${settings.durationMs / 1000} s with ` +
          `${formatCount(settings.connections)} slowloris connections`,
      );
      sessionsWith += await measure(server.port, settings, settings.durationMs, withAttack);
      lost += attack.lost;
      attack.close();
      await sleep(200); // let the server see them go before the next "without"
    }
    const phaseMs = settings.rounds * settings.durationMs;
    const results = {
      without: phaseResult(without, sessionsWithout, phaseMs),
      with: phaseResult(withAttack, sessionsWith, phaseMs),
    };
    const ratios = {
      p50: results.with.p50Ms / results.without.p50Ms,
      p99: results.with.p99Ms / results.without.p99Ms,
      sessionsPerSecond: results.with.sessions / results.without.sessions,
    };
    if (settings.json) {
      process.stdout.write(
        `${JSON.stringify({ machine, settings, results, ratios, lost }, null, 2)}\n`,
      );
    } else {
      const row = (name: string, phase: PhaseResult): string[] => [
        name,
        formatCount(phase.sessions),
        formatCount(phase.sessions / phase.seconds),
        formatMs(phase.p50Ms),
        formatMs(phase.p99Ms),
        formatMs(phase.maxMs),
      ];
      const lines = [
        `## Slowloris (\`npm run bench:slowloris\`)`,
        '',
        ...machineLines(machine, loadAverage()),
        '',
        `${settings.clients} normal clients doing back-to-back sessions (HELO, DATA, QUIT, ` +
          `each reply awaited), ${settings.rounds} rounds of ${settings.durationMs / 1000} s ` +
          `without and ${settings.durationMs / 1000} s with ${formatCount(settings.connections)} ` +
          `connections each dribbling a byte every ${settings.byteEveryMs} ms of a line that ` +
          'never ends; one event-loop server (`--store memory:`) for the whole run.',
        '',
        markdownTable(
          ['phase', 'sessions', 'sessions/s', 'p50 ms', 'p99 ms', 'max ms'],
          [
            row('without slowloris', results.without),
            row(`with ${formatCount(settings.connections)} slowloris`, results.with),
          ],
          ['left', 'right', 'right', 'right', 'right', 'right'],
        ),
        '',
        `- with / without: p50 ×${ratios.p50.toFixed(2)}, p99 ×${ratios.p99.toFixed(2)}, ` +
          `sessions/s ×${ratios.sessionsPerSecond.toFixed(2)}`,
        `- slowloris connections closed by the server during the run: ${lost} (expected 0: ` +
          'the idle timeout, 300 s, is longer than the run)',
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    }
    if (lost !== 0) process.exitCode = 1;
  } finally {
    await server.stop();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(
    `npm run bench:slowloris: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
});
