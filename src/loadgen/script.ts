/**
 * `helo bench --script FILE`: a session written as send/expect steps, so
 * that any line protocol can be driven the same way as helo (docs/BENCH.md).
 *
 *   # comment; blank lines are ignored
 *   send HELO bench\r\n        bytes to send (escapes as in --request)
 *   expect 100 OK\r\n          the exact reply to what was sent since the last expect
 *   expect-lines 2             or: a reply of 2 lines, whatever they say
 *   repeat                     steps above: once per connection; below: repeated
 *
 * Without `repeat` the script is one session: connect, run every step,
 * close, and start again. With it, each connection runs the steps above it
 * once and the steps below it for as long as the load runs. Several sends
 * before one expect share that reply (a bare DATA and its payload line).
 */
import { InvalidOptionError } from '../errors.js';
import { formatEscapes, parseEscapes } from './escapes.js';
import type { Exchange, LoadPlan } from './load-plan.js';
import { anyReply, exactReply, type ReplyExpectation } from './reply-expectation.js';

const LF = 0x0a;
const MAX_REPLY_LINES = 1000;

export function parseScript(text: string, source: string): LoadPlan {
  const before: Exchange[] = [];
  const after: Exchange[] = [];
  let current = before;
  let hasRepeat = false;
  let pending: Buffer[] = [];
  let pendingLine = 0;

  const lines = text.split('\n');
  lines.forEach((raw, index) => {
    const where = `${source}:${index + 1}`;
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '' || line.trimStart().startsWith('#')) return;
    const match = /^\s*([a-z-]+)(?: (.*))?$/.exec(line);
    const step = match?.[1];
    const argument = match?.[2] ?? '';
    const fail = (message: string): never => {
      throw new InvalidOptionError(`${where}: ${message}`);
    };
    const expectReply = (reply: ReplyExpectation): void => {
      if (pending.length === 0) fail(`'${step}' must follow a 'send'`);
      current.push({ request: Buffer.concat(pending), reply });
      pending = [];
    };
    switch (step) {
      case 'send': {
        const bytes = escaped(argument, fail);
        if (bytes.length === 0 || bytes[bytes.length - 1] !== LF) {
          fail(`what 'send' sends must end with \\n, got '${formatEscapes(bytes)}' (add \\r\\n)`);
        }
        if (pending.length === 0) pendingLine = index + 1;
        pending.push(bytes);
        break;
      }
      case 'expect': {
        const bytes = escaped(argument, fail);
        if (bytes.length === 0 || bytes[bytes.length - 1] !== LF) {
          fail(`an expected reply must end with \\n, got '${formatEscapes(bytes)}' (add \\r\\n)`);
        }
        expectReply(exactReply(bytes));
        break;
      }
      case 'expect-lines': {
        if (!/^\d+$/.test(argument.trim())) fail(`'expect-lines' takes a number of lines`);
        const count = Number(argument.trim());
        if (count < 1 || count > MAX_REPLY_LINES) {
          fail(`'expect-lines' must be between 1 and ${MAX_REPLY_LINES}`);
        }
        expectReply(anyReply(count));
        break;
      }
      case 'repeat':
        if (argument.trim() !== '') fail(`'repeat' takes no argument`);
        if (hasRepeat) fail(`only one 'repeat' is allowed`);
        if (pending.length > 0) fail(`a 'send' before 'repeat' has no expect`);
        hasRepeat = true;
        current = after;
        break;
      default:
        fail(
          `unknown step '${line.trim()}'; a step is send TEXT, expect TEXT, expect-lines N or repeat`,
        );
    }
  });
  if (pending.length > 0) {
    throw new InvalidOptionError(`${source}:${pendingLine}: this 'send' has no expect after it`);
  }
  const steps = before.length + after.length;
  if (hasRepeat && after.length === 0) {
    throw new InvalidOptionError(`${source}: nothing to repeat after 'repeat'`);
  }
  if (steps === 0) throw new InvalidOptionError(`${source}: the script has no send/expect step`);
  const description = `script ${source} (${steps} ${steps === 1 ? 'exchange' : 'exchanges'}`;
  return hasRepeat
    ? {
        kind: 'steady',
        setup: before,
        body: after,
        description: `${description}, ${before.length} once per connection)`,
      }
    : { kind: 'session', setup: [], body: before, description: `${description} per session)` };
}

function escaped(argument: string, fail: (message: string) => never): Buffer {
  try {
    return parseEscapes(argument);
  } catch (error) {
    return fail(error instanceof Error ? error.message : String(error));
  }
}
