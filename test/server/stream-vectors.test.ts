/**
 * The shared protocol vectors replayed over real stream sockets against the
 * real server: TCP in every concurrency model, and Unix domain sockets and
 * TLS (event loop): all in one write, one byte per write, at random split
 * points, and with the client half-closing right after its last byte. The
 * event loop over TCP gets every variant; the others (whose machinery
 * differs, not their protocol) get fewer, since a fork-mode connection
 * costs a process start.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import type { ServerMode } from '../../src/server/options.js';
import { ForkServer } from '../../src/server/fork/fork-server.js';
import { runServer } from '../../src/server/run-server.js';
import type { HeloServer, RunningServer, StartServerOptions } from '../../src/server/server.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { makeTestPki } from '../helpers/certificates.js';
import { delay, RawClient } from '../helpers/raw-client.js';
import {
  assertStoredAsVector,
  loadVectors,
  oneByteAtATime,
  segmentsOf,
  splitAt,
  type Vector,
} from '../helpers/vectors.js';

type Split = (segment: Buffer) => Buffer[];

type StreamTransport = 'tcp' | 'unix' | 'tls';

const MODES: readonly ServerMode[] = ['event-loop', 'sequential', 'fork', 'cluster', 'threads'];

const pki = makeTestPki();
const socketDir = mkdtempSync(join(tmpdir(), 'helo-vectors-'));
after(() => {
  pki.remove();
  rmSync(socketDir, { recursive: true, force: true });
});

for (const mode of MODES) describeVectors(mode, 'tcp');
describeVectors('event-loop', 'unix');
describeVectors('event-loop', 'tls');

/** Server options that open the transport's listener. */
function listenerOptions(transport: StreamTransport, group: number): Partial<StartServerOptions> {
  switch (transport) {
    case 'unix':
      return { unixPath: join(socketDir, `helo-${group}.sock`) };
    case 'tls':
      return { tlsPort: 0, tlsCertPath: pki.serverCert, tlsKeyPath: pki.serverKey };
    default:
      return {};
  }
}

function openClient(
  server: RunningServer,
  transport: StreamTransport,
  group: number,
): Promise<RawClient> {
  switch (transport) {
    case 'unix':
      return RawClient.openUnix(join(socketDir, `helo-${group}.sock`));
    case 'tls':
      return RawClient.openTls((server as HeloServer).tlsPort!, { ca: pki.read(pki.caCert) });
    default:
      return RawClient.open(server.port);
  }
}

/** Vectors grouped by the server options they need: one server per group. */
function vectorsByOptions(): Map<string, Vector[]> {
  const groups = new Map<string, Vector[]>();
  for (const vector of loadVectors()) {
    const key = JSON.stringify(vector.options ?? {});
    groups.set(key, [...(groups.get(key) ?? []), vector]);
  }
  return groups;
}

function describeVectors(mode: ServerMode, transport: StreamTransport): void {
  const isEventLoopTcp = mode === 'event-loop' && transport === 'tcp';
  let group = 0;
  for (const [optionsKey, vectors] of vectorsByOptions()) {
    const thisGroup = ++group;
    describe(`protocol vectors over ${transport}, ${mode} mode, options ${optionsKey}`, () => {
      // One server at a time: a cluster's workers share their listener by
      // address, so two clusters on port 0 in one process would share one.
      let server: RunningServer;
      let store: MemoryStore;

      before(async () => {
        store = new MemoryStore();
        server = await runServer({
          port: 0,
          store,
          logLevel: 'silent',
          mode,
          workers: 2,
          // Threads mode with CPU work: every request's reply comes back from a thread.
          ...(mode === 'threads' ? { threads: 2, workCpuMs: 1 } : {}),
          ...listenerOptions(transport, thisGroup),
          ...(vectors[0]!.options ?? {}),
        });
      });

      after(() => server.close());

      async function replay(vector: Vector, split: Split, halfClose: boolean): Promise<void> {
        const lastId = (await store.read(0, Number.MAX_SAFE_INTEGER)).at(-1)?.id ?? 0;
        const handedOver = server instanceof ForkServer ? server.sessionsHandedOver : 0;
        const client = await openClient(server, transport, thisGroup);
        try {
          // Silences (§9) are timed from when the session reads, after its process has started.
          while (server instanceof ForkServer && server.sessionsHandedOver === handedOver) {
            await delay(5);
          }
          const silenceMs = (vector.options?.unterminatedAfterMs ?? 0) * 3;
          for (const segment of segmentsOf(vector)) {
            if (segment === null) {
              await delay(silenceMs);
              continue;
            }
            const pieces = split(segment);
            for (const piece of pieces) {
              client.write(piece);
              // Give each piece its own trip through the kernel and the server.
              if (pieces.length > 1) await new Promise((resolve) => setImmediate(resolve));
            }
          }
          if (halfClose) client.socket.end();
          const expected = Buffer.byteLength(vector.replies, 'latin1');
          if (vector.closes || halfClose) {
            await client.untilEnded();
          } else {
            await client.untilBytes(expected);
            await delay(20); // anything extra would show up now
            assert.equal(client.isEnded, false, 'the server must keep the connection open');
          }
          assert.equal(client.text, vector.replies, 'replies');
          assertStoredAsVector(await store.read(lastId, 1000), vector);
        } finally {
          client.close();
        }
      }

      for (const vector of vectors) {
        describe(vector.name, () => {
          it('all in one write', () => replay(vector, (segment) => [segment], false));
          if (isEventLoopTcp) it('one byte per write', () => replay(vector, oneByteAtATime, false));
          it('at random split points', async () => {
            await fc.assert(
              fc.asyncProperty(fc.array(fc.nat(), { maxLength: 6 }), (cuts) =>
                replay(vector, (segment) => splitAt(segment, cuts), false),
              ),
              { numRuns: isEventLoopTcp ? 3 : 1 },
            );
          });
          if (!vector.closes) {
            it('with a half-close after the last byte: every reply still arrives', () =>
              replay(vector, (segment) => [segment], true));
          }
        });
      }
    });
  }
}
