/**
 * What `--max-connections-per-ip` counts a client as (docs/SECURITY.md):
 * an IPv4-mapped IPv6 address as its IPv4 address, other IPv6 addresses by
 * their /64 prefix; in every mode, while logs and records keep the address
 * the socket reported.
 */
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import fc from 'fast-check';
import { admissionKey } from '../../src/server/admission.js';
import { SlotAdmission, SlotPool } from '../../src/server/cluster/connection-slots.js';
import type { IpcPeer } from '../../src/server/ipc/messages.js';
import type { ServerMode } from '../../src/server/options.js';
import { runServer } from '../../src/server/run-server.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { RawClient } from '../helpers/raw-client.js';

const OK = '100 OK\r\n';
const BUSY = '503 BUSY\r\n';

/** The canonical (compressed) text of an IPv6 address, as URL parsing writes it. */
function canonical(address: string): string {
  return new URL(`http://[${address}]/`).hostname.slice(1, -1);
}

const group = fc.integer({ min: 0, max: 0xffff });
const groups = (count: number): fc.Arbitrary<number[]> =>
  fc.array(group, { minLength: count, maxLength: count });
const fullForm = (parts: number[]): string => parts.map((part) => part.toString(16)).join(':');

describe('admissionKey', () => {
  it('keeps an IPv4 address as it is (property)', () => {
    fc.assert(fc.property(fc.ipV4(), (v4) => assert.equal(admissionKey(v4), v4)));
  });

  it('counts an IPv4-mapped IPv6 address, however written, as its IPv4 address (property)', () => {
    fc.assert(
      fc.property(fc.ipV4(), (v4) => {
        const [a = 0, b = 0, c = 0, d = 0] = v4.split('.').map(Number);
        const hex = `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
        for (const form of [
          `::ffff:${v4}`,
          `::FFFF:${v4}`,
          `0:0:0:0:0:ffff:${v4}`,
          `::ffff:${hex}`,
          `::ffff:${v4}%lo`,
        ]) {
          assert.equal(admissionKey(form), v4, form);
        }
      }),
    );
  });

  it('gives two addresses in one /64 the same key, however written (property)', () => {
    fc.assert(
      fc.property(groups(4), groups(4), groups(4), (prefix, host1, host2) => {
        fc.pre(!(prefix.slice(0, 3).every((part) => part === 0) && prefix[3] === 0));
        const one = fullForm([...prefix, ...host1]);
        const two = fullForm([...prefix, ...host2]);
        assert.equal(admissionKey(one), admissionKey(two));
        assert.equal(admissionKey(canonical(one)), admissionKey(one));
        assert.equal(admissionKey(`${one}%eth0`), admissionKey(one));
      }),
    );
  });

  it('gives addresses in different /64s different keys (property)', () => {
    fc.assert(
      fc.property(groups(8), groups(8), (one, two) => {
        fc.pre(fullForm(one.slice(0, 4)) !== fullForm(two.slice(0, 4)));
        assert.notEqual(admissionKey(fullForm(one)), admissionKey(fullForm(two)));
        assert.notEqual(admissionKey(canonical(fullForm(one))), admissionKey(fullForm(two)));
      }),
    );
  });

  it('reads every IPv6 spelling (embedded IPv4 tails included) like its canonical form (property)', () => {
    fc.assert(
      fc.property(fc.ipV6(), (address) => {
        assert.equal(admissionKey(address), admissionKey(canonical(address)));
      }),
    );
  });

  it('never throws, whatever the string (property)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 60 }), (text) => {
        assert.equal(typeof admissionKey(text), 'string');
      }),
    );
    for (const odd of ['', 'unix', '%', '::%', 'fe80::1%', '1.2.3.4%eth0', ':::', '::ffff:']) {
      assert.equal(typeof admissionKey(odd), 'string', odd);
    }
    assert.equal(admissionKey('2001:db8:1:2::9'), '2001:db8:1:2::/64');
    assert.notEqual(admissionKey('::1'), admissionKey('::ffff:127.0.0.1'));
  });
});

/** Whether this machine has an IPv6 loopback (::1) to test dual-stack listeners on. */
async function hasIpv6Loopback(): Promise<boolean> {
  const probe = createServer();
  try {
    probe.listen(0, '::1');
    await once(probe, 'listening');
    return true;
  } catch {
    return false;
  } finally {
    probe.close();
  }
}

const NO_IPV6 = (await hasIpv6Loopback())
  ? false
  : 'skipped: this machine has no IPv6 loopback (::1), so no dual-stack listener to test';

/** Connects from `localAddress` (all of 127/8 is loopback) and says HELO; resolves with what came back. */
async function heloFrom(port: number, host: string, localAddress?: string): Promise<string> {
  const socket = connect({ port, host, ...(localAddress === undefined ? {} : { localAddress }) });
  socket.on('error', () => undefined);
  let text = '';
  socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
  await once(socket, 'connect');
  socket.write('HELO\r\nQUIT\r\n');
  await once(socket, 'close');
  return text;
}

/** One end of an in-process IPC channel: what `send()` gets, the other end's 'message' listeners see. */
class ChannelEnd extends EventEmitter implements IpcPeer {
  readonly connected = true;
  other: ChannelEnd | null = null;
  send(message: unknown): boolean {
    const copy = structuredClone(message);
    setImmediate(() => this.other?.emit('message', copy));
    return true;
  }
}

const opened: { servers: RunningServer[]; listeners: Server[]; clients: RawClient[] } = {
  servers: [],
  listeners: [],
  clients: [],
};
afterEach(async () => {
  for (const client of opened.clients.splice(0)) client.close();
  for (const listener of opened.listeners.splice(0)) listener.close();
  for (const server of opened.servers.splice(0)) await server.close();
});

async function held(port: number, host: string): Promise<RawClient> {
  const client = await RawClient.open(port, host);
  opened.clients.push(client);
  client.write('HELO\r\n');
  await client.untilBytes(OK.length);
  return client;
}

describe('--max-connections-per-ip with IPv4 and IPv6 clients', () => {
  for (const admissionKind of ['one process', 'a cluster slot pool'] as const) {
    it(
      `counts 127.0.0.1 and ::ffff:127.0.0.1 as one client (${admissionKind})`,
      { skip: NO_IPV6 },
      async () => {
        let admission: SlotAdmission | undefined;
        if (admissionKind === 'a cluster slot pool') {
          const primaryEnd = new ChannelEnd();
          const workerEnd = new ChannelEnd();
          primaryEnd.other = workerEnd;
          workerEnd.other = primaryEnd;
          new SlotPool(100, 1).attach(primaryEnd);
          admission = new SlotAdmission(workerEnd, 1);
        }
        const store = new MemoryStore();
        const server = await startServer({
          port: 0,
          logLevel: 'silent',
          store,
          maxConnectionsPerIp: 1,
          ...(admission === undefined ? {} : { admission }),
        });
        opened.servers.push(server);
        // The same client, reaching the server through an IPv4 listener and a
        // dual-stack one, is reported once as 127.0.0.1 and once as
        // ::ffff:127.0.0.1; serveSocket() takes sockets from any listener.
        const listen = async (host: string): Promise<number> => {
          const listener = createServer({ allowHalfOpen: true }, (socket: Socket) =>
            server.serveSocket(socket),
          );
          opened.listeners.push(listener);
          listener.listen(0, host);
          await once(listener, 'listening');
          return (listener.address() as { port: number }).port;
        };
        const v4Port = await listen('127.0.0.1');
        const dualPort = await listen('::');
        const holder = await held(v4Port, '127.0.0.1');
        holder.write('DATA from v4\r\n');
        await holder.untilBytes(OK.length + '300 DRCV\r\n'.length);
        assert.equal(await heloFrom(dualPort, '::ffff:127.0.0.1'), BUSY, 'the same client again');
        assert.equal(await heloFrom(dualPort, '127.0.0.1', '127.0.0.2'), `${OK}200 BYE\r\n`);
        assert.equal(await heloFrom(dualPort, '::1'), `${OK}200 BYE\r\n`);
        // The record keeps the address as the socket reported it.
        assert.match((await store.read(0, 10))[0]?.peer ?? '', /^127\.0\.0\.1:\d+$/);
      },
    );
  }

  for (const mode of [
    'event-loop',
    'fork',
    'cluster',
    'threads',
  ] as const satisfies readonly ServerMode[]) {
    it(
      `a dual-stack server (--host ::) in ${mode} mode: ::ffff:127.0.0.1 is refused while 127.0.0.1 holds its slot, other addresses are served`,
      { skip: NO_IPV6 },
      async () => {
        const store = new MemoryStore();
        const server = await runServer({
          host: '::',
          port: 0,
          logLevel: 'silent',
          mode,
          workers: 2,
          store,
          maxConnectionsPerIp: 1,
        });
        opened.servers.push(server);
        const holder = await held(server.port, '127.0.0.1');
        holder.write('DATA held\r\n');
        await holder.untilBytes(OK.length + '300 DRCV\r\n'.length);
        assert.equal(await heloFrom(server.port, '::ffff:127.0.0.1'), BUSY);
        // Not every IPv4 client in one key: 127.0.0.2 is another client.
        assert.equal(await heloFrom(server.port, '127.0.0.1', '127.0.0.2'), `${OK}200 BYE\r\n`);
        assert.equal(await heloFrom(server.port, '::1'), `${OK}200 BYE\r\n`);
        assert.match((await store.read(0, 10))[0]?.peer ?? '', /^\[::ffff:127\.0\.0\.1\]:\d+$/);
      },
    );
  }
});
