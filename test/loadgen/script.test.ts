/** `--script FILE`: send/expect steps for any line protocol. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidOptionError } from '../../src/errors.js';
import { parseScript } from '../../src/loadgen/script.js';

describe('parseScript', () => {
  it('reads a session: each send with the reply that answers it', () => {
    const plan = parseScript(
      [
        '# the helo session',
        'send HELO bench\\r\\n',
        'expect 100 OK\\r\\n',
        '',
        'send DATA\\r\\n',
        'send hello\\r\\n',
        'expect 300 DRCV\\r\\n',
        'send QUIT\\r\\n',
        'expect-lines 1',
      ].join('\r\n'),
      'helo.txt',
    );
    assert.equal(plan.kind, 'session');
    assert.deepEqual(plan.setup, []);
    assert.deepEqual(
      plan.body.map((exchange) => exchange.request.toString()),
      ['HELO bench\r\n', 'DATA\r\nhello\r\n', 'QUIT\r\n'],
    );
    assert.deepEqual(plan.body[1]!.reply.lines, [Buffer.from('300 DRCV\r\n')]);
    assert.deepEqual(plan.body[2]!.reply, { lineCount: 1, lines: null });
  });

  it('makes a steady plan with repeat: setup above, repeated body below', () => {
    const plan = parseScript(
      [
        'send AUTH x\\r\\n',
        'expect +OK\\r\\n',
        'repeat',
        'send PING\\r\\n',
        'expect +PONG\\r\\n',
      ].join('\n'),
      'redis.txt',
    );
    assert.equal(plan.kind, 'steady');
    assert.deepEqual(
      plan.setup.map((exchange) => exchange.request.toString()),
      ['AUTH x\r\n'],
    );
    assert.deepEqual(
      plan.body.map((exchange) => exchange.request.toString()),
      ['PING\r\n'],
    );
  });

  it('names the file and line of every mistake', () => {
    const cases: [string, RegExp][] = [
      ['send PING\\r\\n\nexpect +PONG', /^s\.txt:2: an expected reply must end with \\n/],
      ['send PING', /^s\.txt:1: what 'send' sends must end with \\n/],
      ['expect +PONG\\r\\n', /^s\.txt:1: 'expect' must follow a 'send'/],
      ['send PING\\r\\n', /^s\.txt:1: this 'send' has no expect after it/],
      ['sned PING\\r\\n', /^s\.txt:1: unknown step 'sned PING\\r\\n'/],
      ['send PING\\q\\r\\n', /^s\.txt:1: bad escape/],
      ['send A\\n\nexpect-lines 0', /^s\.txt:2: 'expect-lines' must be between 1 and/],
      ['send A\\n\nexpect B\\n\nrepeat', /^s\.txt: nothing to repeat/],
      ['# only a comment\n', /^s\.txt: the script has no send\/expect step/],
      ['repeat\nrepeat', /^s\.txt:2: only one 'repeat'/],
    ];
    for (const [text, message] of cases) {
      assert.throws(
        () => parseScript(text, 's.txt'),
        (error: unknown) => error instanceof InvalidOptionError && message.test(error.message),
        text,
      );
    }
  });
});
