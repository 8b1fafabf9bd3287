/**
 * TelnetFilter (docs/PROTOCOL.md §11) with the raw bytes a telnet sends:
 * examples, then properties over token streams cut anywhere.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { StreamProtocol } from '../../src/core/stream-protocol.js';
import type { SessionAction } from '../../src/core/session.js';
import { TelnetFilter, type TelnetSink } from '../../src/core/telnet.js';
import { splitAt } from '../helpers/vectors.js';

/** What came out, in order: data runs merged, replies as hex, interrupts as 'IP'. */
type Event = { data: string } | { reply: string } | 'IP';

function filter(pieces: readonly Buffer[]): Event[] {
  const telnet = new TelnetFilter();
  const events: Event[] = [];
  const sink: TelnetSink = {
    onData(chunk, start, end) {
      const text = chunk.toString('latin1', start, end);
      assert.ok(text.length > 0, 'no empty data runs');
      const last = events.at(-1);
      if (typeof last === 'object' && 'data' in last) last.data += text;
      else events.push({ data: text });
    },
    onNegotiationReply(bytes) {
      events.push({ reply: bytes.toString('hex') });
    },
    onInterrupt() {
      events.push('IP');
    },
  };
  for (const piece of pieces) telnet.push(piece, sink);
  return events;
}

const bytes = (...values: number[]): Buffer => Buffer.from(values);
const text = (value: string): Buffer => Buffer.from(value, 'latin1');

// The bytes telnet sends for Ctrl-C: IAC IP IAC DO TIMING-MARK.
const CTRL_C = bytes(0xff, 0xf4, 0xff, 0xfd, 0x06);

describe('TelnetFilter', () => {
  it('takes Ctrl-C out of a line, reports the interrupt and refuses DO TIMING-MARK', () => {
    const input = Buffer.concat([text('DATA hel'), CTRL_C, text('HELO\r\n')]);
    assert.deepEqual(filter([input]), [
      { data: 'DATA hel' },
      'IP',
      { reply: 'fffc06' },
      { data: 'HELO\r\n' },
    ]);
  });

  it('answers DO with WONT and WILL with DONT; WONT and DONT get no answer', () => {
    const input = bytes(0xff, 0xfd, 0x01, 0xff, 0xfb, 0x03, 0xff, 0xfc, 0x01, 0xff, 0xfe, 0x03);
    assert.deepEqual(filter([input]), [{ reply: 'fffc01' }, { reply: 'fffe03' }]);
  });

  it('turns IAC IAC into one 0xff data byte', () => {
    assert.deepEqual(filter([bytes(0x61, 0xff, 0xff, 0x62)]), [{ data: 'a\u00ffb' }]);
  });

  it('skips a subnegotiation, an escaped IAC and a fake SE inside it included', () => {
    const input = Buffer.concat([
      text('a'),
      bytes(0xff, 0xfa, 0x18, 0x00, 0xff, 0xff, 0xf0, 0x41, 0xff, 0xf0),
      text('b'),
    ]);
    assert.deepEqual(filter([input]), [{ data: 'ab' }]);
  });

  it('removes two-byte commands (NOP, AYT, GA, DM) and undefined ones', () => {
    const input = bytes(0x61, 0xff, 0xf1, 0xff, 0xf6, 0xff, 0xf9, 0xff, 0xf2, 0xff, 0x41, 0x62);
    assert.deepEqual(filter([input]), [{ data: 'ab' }]);
  });

  it('hands a chunk without IAC on whole, without copying it', () => {
    const chunk = text('HELO\r\nDATA x\r\n');
    const telnet = new TelnetFilter();
    let seen: Buffer | null = null;
    telnet.push(chunk, {
      onData(data, start, end) {
        assert.equal(start, 0);
        assert.equal(end, chunk.length);
        seen = data;
      },
      onNegotiationReply: () => assert.fail('no reply expected'),
      onInterrupt: () => assert.fail('no interrupt expected'),
    });
    assert.equal(seen, chunk);
  });

  it('with the framer: Ctrl-C discards the partial line, and the session goes on', () => {
    const protocol = new StreamProtocol(8192);
    const telnet = new TelnetFilter();
    const out: string[] = [];
    const actions = {
      onAction(action: SessionAction) {
        if (action.type === 'reply') out.push(action.reply.token);
        if (action.type === 'store') out.push(`store:${action.payload.toString('latin1')}`);
      },
    };
    const sink: TelnetSink = {
      onData: (chunk, start, end) => protocol.push(chunk.subarray(start, end), actions),
      onNegotiationReply: (reply) => out.push(`reply:${reply.toString('hex')}`),
      onInterrupt: () => protocol.discardPartialLine(),
    };
    telnet.push(text('HELO\r\nDATA\r\nhalf a pay'), sink);
    telnet.push(CTRL_C, sink);
    telnet.push(text('load\r\nQUIT\r\n'), sink);
    // The payload line typed after the Ctrl-C is a new line: "load" is the payload.
    assert.deepEqual(out, ['OK', 'reply:fffc06', 'store:load', 'BYE']);
  });
});

// A telnet stream as tokens: what each one must produce.
type Token = { bytes: number[]; data: string; events: Event[] };
const dataToken = fc
  .array(fc.integer({ min: 0, max: 0xfe }), { minLength: 1, maxLength: 12 })
  .map((values): Token => ({
    bytes: values,
    data: Buffer.from(values).toString('latin1'),
    events: [],
  }));
const escapedIac = fc.constant<Token>({ bytes: [0xff, 0xff], data: '\u00ff', events: [] });
const negotiation = fc
  .tuple(fc.constantFrom(0xfb, 0xfc, 0xfd, 0xfe), fc.integer({ min: 0, max: 255 }))
  .map(([verb, option]): Token => {
    const answer = verb === 0xfd ? 0xfc : verb === 0xfb ? 0xfe : null;
    return {
      bytes: [0xff, verb, option],
      data: '',
      events: answer === null ? [] : [{ reply: bytes(0xff, answer, option).toString('hex') }],
    };
  });
const command = fc
  .integer({ min: 0, max: 0xf9 })
  .filter((code) => code !== 0xf4)
  .map((code): Token => ({ bytes: [0xff, code], data: '', events: [] }));
const interrupt = fc.constant<Token>({ bytes: [0xff, 0xf4], data: '', events: ['IP'] });
const subnegotiation = fc
  .array(fc.oneof(fc.integer({ min: 0, max: 0xfe }), fc.constant(-1)), { maxLength: 10 })
  .map((inside): Token => {
    // -1 stands for an escaped IAC inside the subnegotiation.
    const body = inside.flatMap((value) => (value === -1 ? [0xff, 0xff] : [value]));
    return { bytes: [0xff, 0xfa, ...body, 0xff, 0xf0], data: '', events: [] };
  });
const tokens = fc.array(
  fc.oneof(
    { weight: 4, arbitrary: dataToken },
    escapedIac,
    negotiation,
    command,
    interrupt,
    subnegotiation,
  ),
  { maxLength: 20 },
);

/** The events the tokens must give, data runs merged. */
function expected(list: readonly Token[]): Event[] {
  const events: Event[] = [];
  for (const token of list) {
    if (token.data !== '') {
      const last = events.at(-1);
      if (typeof last === 'object' && 'data' in last) last.data += token.data;
      else events.push({ data: token.data });
    }
    events.push(...token.events);
  }
  return events;
}

describe('TelnetFilter properties', () => {
  it('gives exactly the data and answers of the tokens, however the stream is cut', () => {
    fc.assert(
      fc.property(tokens, fc.array(fc.nat(), { maxLength: 8 }), (list, cuts) => {
        const stream = Buffer.from(list.flatMap((token) => token.bytes));
        assert.deepEqual(filter(splitAt(stream, cuts)), expected(list));
      }),
      { numRuns: 500 },
    );
  });

  it('gives the same result for any bytes cut anywhere, and never throws', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.constantFrom(0xff, 0xfd, 0xfa, 0xf0, 0xf4), fc.nat(255)), {
          maxLength: 64,
        }),
        fc.array(fc.nat(), { maxLength: 8 }),
        (values, cuts) => {
          const stream = Buffer.from(values);
          const whole = filter([stream]);
          assert.deepEqual(filter(splitAt(stream, cuts)), whole);
          assert.deepEqual(filter([...stream].map((value) => bytes(value))), whole);
          // Output data is never longer than the input; 0xff only from IAC IAC.
          const data = whole
            .map((event) => (typeof event === 'object' && 'data' in event ? event.data : ''))
            .join('');
          assert.ok(data.length <= stream.length);
        },
      ),
      { numRuns: 500 },
    );
  });
});
