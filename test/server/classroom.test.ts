/**
 * The lab's own clients on real sockets (docs/PROTOCOL.md §9, §11): telnet's
 * control bytes with `--telnet` on and off, the warning a plain server logs
 * for a client that sends no newline, and the partial line dropped at EOF.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { pino } from 'pino';
import { startServer, type HeloServer, type StartServerOptions } from '../../src/server/server.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { delay, RawClient } from '../helpers/raw-client.js';

// What telnet sends for Ctrl-C: IAC IP IAC DO TIMING-MARK.
const CTRL_C = Buffer.from([0xff, 0xf4, 0xff, 0xfd, 0x06]);
// The refusal that ends telnet's wait: IAC WONT TIMING-MARK.
const WONT_TM = '\xff\xfc\x06';

type LogLine = Record<string, unknown> & { level: number; msg: string };

describe('classroom clients on a real socket', () => {
  let server: HeloServer | null = null;
  let store = new MemoryStore();
  const clients: RawClient[] = [];
  const logs: LogLine[] = [];

  async function start(options: Partial<StartServerOptions> = {}): Promise<HeloServer> {
    store = new MemoryStore();
    const logger = pino(
      { level: 'debug' },
      { write: (line: string) => void logs.push(JSON.parse(line) as LogLine) },
    );
    server = await startServer({ port: 0, store, logger, ...options });
    return server;
  }

  async function open(): Promise<RawClient> {
    const client = await RawClient.open(server!.port);
    clients.push(client);
    return client;
  }

  const payloads = async (): Promise<string[]> =>
    (await store.read(0, 100)).map((r) => r.payload.toString('latin1'));

  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    await server?.close();
    server = null;
    logs.length = 0;
  });

  it('--telnet: Ctrl-C in the middle of a line discards it, is refused, and the session goes on', async () => {
    await start({ telnet: true });
    const client = await open();
    client.write('HELO\r\nDATA half a pay');
    await client.untilBytes(8);
    client.write(CTRL_C);
    await client.untilBytes(8 + 3);
    client.write('DATA kept\r\nUSER\r\nQUIT\r\n');
    await client.untilEnded();
    assert.equal(client.text, `100 OK\r\n${WONT_TM}300 DRCV\r\n400 BCMD\r\n200 BYE\r\n`);
    assert.deepEqual(await payloads(), ['kept']);
  });

  it('--telnet: a refusal takes its place behind a reply still waiting for its commit', async () => {
    await start({ telnet: true });
    const client = await open();
    client.write(Buffer.concat([Buffer.from('DATA x\r\n'), CTRL_C, Buffer.from('HELO\r\n')]));
    await client.untilBytes(10 + 3 + 8);
    assert.equal(client.text, `300 DRCV\r\n${WONT_TM}100 OK\r\n`);
  });

  it('--telnet: IAC IAC stores one 0xff byte; WILL is answered DONT', async () => {
    await start({ telnet: true });
    const client = await open();
    client.write(Buffer.from([0xff, 0xfb, 0x18]));
    client.write(
      Buffer.concat([Buffer.from('DATA a'), Buffer.from([0xff, 0xff]), Buffer.from('b\r\n')]),
    );
    await client.untilBytes(3 + 10);
    assert.equal(client.text, '\xff\xfe\x18300 DRCV\r\n');
    assert.deepEqual(await payloads(), ['a\xffb']);
  });

  it('without --telnet the same bytes are payload, stored byte-exact, with no extra reply', async () => {
    await start();
    const client = await open();
    client.write(Buffer.concat([Buffer.from('DATA a'), CTRL_C, Buffer.from('b\r\nQUIT\r\n')]));
    await client.untilEnded();
    assert.equal(client.text, '300 DRCV\r\n200 BYE\r\n');
    assert.deepEqual(await payloads(), ['a\xff\xf4\xff\xfd\x06b']);
  });

  it('without §9, a partial line waiting 2 s gets one warning naming the option, once per session', async () => {
    await start();
    const client = await open();
    client.write('HELO'); // a lab client: no newline, then it waits for the reply
    const warnings = (): LogLine[] => logs.filter((line) => line.level === 40);
    await client.until(() => warnings().length > 0, 3_500, 'the warning');
    assert.equal(client.text, '', 'no reply: the server still waits for the LF');
    const [warning] = warnings();
    assert.match(warning!.msg, /--unterminated-after-ms/);
    assert.equal(warning!.partialLineBytes, 4);
    // Once per session: another newline-less command gets no second warning.
    client.write('\r\nQUIT');
    await client.untilBytes(8);
    await delay(2_300);
    assert.equal(warnings().length, 1);
  });

  it('without §9, no warning for a line that arrives in pieces within 2 s', async () => {
    await start();
    const client = await open();
    for (const piece of ['HE', 'LO\r\nDA', 'TA x\r\nQU']) {
      client.write(piece);
      await delay(700);
    }
    client.write('IT\r\n');
    await client.untilEnded();
    assert.equal(client.text, '100 OK\r\n300 DRCV\r\n200 BYE\r\n');
    assert.equal(logs.filter((line) => line.level === 40).length, 0);
  });

  it('without §9, a partial line at EOF is dropped and logged by its size, never its bytes', async () => {
    await start();
    const client = await open();
    client.write('HELO\r\nDATA secret');
    client.socket.end();
    await client.untilEnded();
    assert.equal(client.text, '100 OK\r\n');
    assert.deepEqual(await payloads(), []);
    const dropped = logs.find((line) => line.droppedBytes !== undefined);
    assert.ok(dropped, 'a log line names the dropped partial line');
    assert.equal(dropped.droppedBytes, 'DATA secret'.length);
    assert.match(dropped.msg, /partial line/);
    assert.ok(!JSON.stringify(logs).includes('secret'), 'the bytes themselves are not logged');
  });

  it('with §9, "DATA " ended by silence stores an empty payload (the lab client, empty input)', async () => {
    await start({ unterminatedAfterMs: 50, telnet: true });
    const client = await open();
    for (const [command, reply] of [
      ['HELO', '100 OK\r\n'],
      ['DATA ', '300 DRCV\r\n'],
      ['DATA hi', '300 DRCV\r\n'],
      ['QUIT', '200 BYE\r\n'],
    ] as const) {
      const before = client.receivedBytes;
      client.write(command);
      await client.untilBytes(before + reply.length, 2_000);
    }
    await client.untilEnded();
    assert.equal(client.text, '100 OK\r\n300 DRCV\r\n300 DRCV\r\n200 BYE\r\n');
    assert.deepEqual(await payloads(), ['', 'hi']);
  });
});
