/**
 * `npm run bench:thread-hop`: what threads mode pays to hand work to a
 * worker thread (src/server/threads/), against what the protocol core costs
 * per request — the figures docs/TOUR.md chapter 7 and docs/ARCHITECTURE.md
 * ("Threads") quote:
 *
 *   one round trip over a MessagePort, one message in flight at a time
 *   the same with many in flight (the cost per round trip when they overlap)
 *   the pure core (src/core/stream-protocol.ts) parsing one `HELO` line
 *
 * Medians of 5 rounds, in this one process. Usage (after npm run build):
 *   npm run bench:thread-hop
 */
import { Worker } from 'node:worker_threads';
import { StreamProtocol } from '../src/core/stream-protocol.js';

const ROUNDS = 5;
const LONE_TRIPS = 20_000;
const OVERLAPPED_TRIPS = 200_000;
const IN_FLIGHT = 1_000;
const HELO_LINES = 1_000_000;

/** A thread that posts every message straight back, as a work thread posts its job id. */
const ECHO = `
const { parentPort } = require('node:worker_threads');
parentPort.on('message', (id) => parentPort.postMessage(id));
`;

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Microseconds per round trip with `inFlight` messages travelling at once. */
async function roundTrips(worker: Worker, trips: number, inFlight: number): Promise<number> {
  const started = performance.now();
  await new Promise<void>((resolve) => {
    let sent = 0;
    let received = 0;
    const onReply = (): void => {
      received++;
      if (received === trips) {
        worker.off('message', onReply);
        resolve();
      } else if (sent < trips) worker.postMessage(sent++);
    };
    worker.on('message', onReply);
    while (sent < Math.min(inFlight, trips)) worker.postMessage(sent++);
  });
  return ((performance.now() - started) * 1000) / trips;
}

/** Nanoseconds for the core to frame and interpret one `HELO\r\n`, in reads of 1,000 lines. */
function coreParse(): number {
  const protocol = new StreamProtocol(1024);
  let actions = 0;
  const sink = { onAction: (): void => void actions++ };
  const chunk = Buffer.from('HELO\r\n'.repeat(1000));
  const started = performance.now();
  for (let read = 0; read < HELO_LINES / 1000; read++) protocol.push(chunk, sink);
  const elapsedNs = (performance.now() - started) * 1e6;
  if (actions !== HELO_LINES)
    throw new Error(`the core answered ${actions} of ${HELO_LINES} lines`);
  return elapsedNs / HELO_LINES;
}

async function main(): Promise<void> {
  const worker = new Worker(ECHO, { eval: true });
  try {
    await roundTrips(worker, LONE_TRIPS, 1); // warm-up
    const lone: number[] = [];
    const overlapped: number[] = [];
    const parse: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      lone.push(await roundTrips(worker, LONE_TRIPS, 1));
      overlapped.push(await roundTrips(worker, OVERLAPPED_TRIPS, IN_FLIGHT));
      parse.push(coreParse());
    }
    console.log(`MessagePort round trip, one in flight:     ${median(lone).toFixed(1)} µs`);
    console.log(
      `MessagePort round trip, ${IN_FLIGHT} in flight:  ${median(overlapped).toFixed(2)} µs each`,
    );
    console.log(`the core parsing one HELO line:           ${median(parse).toFixed(0)} ns`);
    console.log(`(medians of ${ROUNDS} rounds, Node.js ${process.version})`);
  } finally {
    await worker.terminate();
  }
}

main().catch((error: unknown) => {
  console.error(`thread-hop: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
