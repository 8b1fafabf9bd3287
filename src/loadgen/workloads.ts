/**
 * The built-in workloads of `helo bench --workload`, and the generic
 * `--request`/`--expect` one, as LoadPlans. The helo ones send exactly what
 * docs/PROTOCOL.md §3 says and expect helo's replies byte for byte.
 */
import { InvalidOptionError } from '../errors.js';
import { formatEscapes } from './escapes.js';
import type { Exchange, LoadPlan } from './load-plan.js';
import { anyReply, exactReply } from './reply-expectation.js';

export const WORKLOADS = ['helo', 'data', 'session'] as const;
export type Workload = (typeof WORKLOADS)[number];

/** The HELO name of the data workload's one HELO per connection. */
const BENCH_NAME = 'bench';

const HELO: Exchange = {
  request: Buffer.from('HELO\r\n'),
  reply: exactReply(Buffer.from('100 OK\r\n')),
};
const HELO_BENCH: Exchange = {
  request: Buffer.from(`HELO ${BENCH_NAME}\r\n`),
  reply: exactReply(Buffer.from('100 OK\r\n')),
};
const QUIT: Exchange = {
  request: Buffer.from('QUIT\r\n'),
  reply: exactReply(Buffer.from('200 BYE\r\n')),
};

/** An inline `DATA <payload>` (docs/PROTOCOL.md §3) with a payload of `size` printable bytes. */
function inlineData(size: number): Exchange {
  // A payload of at least one byte: `DATA ` alone would be a bare DATA.
  if (!Number.isInteger(size) || size < 1) {
    throw new InvalidOptionError(`the payload size must be at least 1 byte, got ${size}`);
  }
  const line = Buffer.alloc('DATA '.length + size + 2, 'x');
  line.write('DATA ', 0, 'latin1');
  line.write('\r\n', line.length - 2, 'latin1');
  return { request: line, reply: exactReply(Buffer.from('300 DRCV\r\n')) };
}

export function workloadPlan(workload: Workload, payloadSize: number): LoadPlan {
  switch (workload) {
    case 'helo':
      return { kind: 'steady', setup: [], body: [HELO], description: 'HELO' };
    case 'data':
      return {
        kind: 'steady',
        setup: [HELO_BENCH],
        body: [inlineData(payloadSize)],
        description: `DATA with a ${payloadSize}-byte payload (after one HELO ${BENCH_NAME})`,
      };
    case 'session':
      return {
        kind: 'session',
        setup: [],
        body: [HELO_BENCH, inlineData(payloadSize), QUIT],
        description: `sessions: connect, HELO, DATA (${payloadSize} bytes), QUIT`,
      };
  }
}

/**
 * `--request BYTES [--expect BYTES]` for any line protocol: one request
 * repeated on each connection; without `expect`, any one line answers it.
 */
export function requestPlan(request: Buffer, expect: Buffer | null): LoadPlan {
  if (request.length === 0 || request[request.length - 1] !== 0x0a) {
    throw new InvalidOptionError(
      `--request must end with a line feed (\\n), got '${formatEscapes(request)}'`,
    );
  }
  const reply = expect === null ? anyReply() : exactReply(expect);
  return {
    kind: 'steady',
    setup: [],
    body: [{ request, reply }],
    description:
      `'${formatEscapes(request)}'` +
      (expect === null ? ', any one-line reply' : ` expecting '${formatEscapes(expect)}'`),
  };
}
