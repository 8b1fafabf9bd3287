/**
 * The grader's checks (docs/GRADING.md explains each one to a student).
 *
 * Data, not code paths: each check has a name, a profile and a `run` that
 * talks to the server over fresh raw connections and returns what it sent,
 * what came back and what was expected. A check tests one property: a
 * server with one fault fails the checks that describe that fault and no
 * other, so the report points at the mistake. Every wait ends at the
 * check's deadline, so the grader never hangs.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { type GradeTarget, openWire, type RawLine, type Wire } from './wire.js';

export type Profile = 'lab' | 'strict';
export const PROFILES: readonly Profile[] = ['lab', 'strict'];

/** What a check saw: enough for a student to replay it by hand. */
export interface CheckDetail {
  readonly sent: string;
  readonly got: string;
  readonly expected: string;
}

export interface CheckResult {
  readonly passed: boolean;
  readonly detail: CheckDetail;
  /** For a check that reports without failing (e.g. a sequential server): what was found. */
  readonly finding?: string;
}

/** What a check may use; every connection it opens is closed after it. */
export interface CheckContext {
  open(): Promise<Wire>;
  /** performance.now() time by which the check must be over. */
  readonly deadline: number;
  /** How long "nothing arrives" is watched for (no banner, no early reply). */
  readonly quietMs: number;
}

export interface Check {
  readonly name: string;
  readonly profile: Profile;
  /** Reported, never failed (the spec: a sequential server is allowed). */
  readonly informational?: boolean;
  run(context: CheckContext): Promise<CheckResult>;
}

/** One send, and the reply lines it should bring (none for a bare DATA). */
interface Step {
  /** Several parts are separate sends with a short pause between them. */
  readonly send: string | readonly string[];
  readonly expect: readonly string[];
}

const REPLY_SHAPE = /^[0-9]{3} [A-Z][A-Z0-9]*$/;

/** How reply lines are compared. */
interface Matching {
  /** Only `\r\n` counts as a terminator (strict `crlf-replies`). */
  readonly crlf: boolean;
  /** Lines that are not replies after `400 BCMD` are skipped (the handout's description line). */
  readonly lab: boolean;
}

const LAB: Matching = { crlf: false, lab: true };
const STRICT: Matching = { crlf: false, lab: false };

function show(text: string): string {
  return JSON.stringify(text);
}

function shownSent(steps: readonly Step[]): string {
  return steps
    .map((step) => (typeof step.send === 'string' ? [step.send] : step.send).map(show).join(' + '))
    .join(', ');
}

/** A reply line as compared: a CR left from a `\n\r` terminator is dropped in the lab profile. */
function replyText(line: RawLine, matching: Matching): string {
  if (matching.crlf) return line.raw;
  return matching.lab ? line.text.replace(/^\r/, '') : line.text;
}

/**
 * Sends each step and reads its replies before the next step (lockstep,
 * the way the exercise's clients talk). Returns the detail and whether
 * every line matched.
 */
async function converse(
  wire: Wire,
  steps: readonly Step[],
  context: CheckContext,
  matching: Matching,
): Promise<{ ok: boolean; got: string[]; expected: string[] }> {
  const got: string[] = [];
  const expected: string[] = [];
  let afterBcmd = false;
  for (const step of steps) {
    const parts = typeof step.send === 'string' ? [step.send] : step.send;
    for (const [i, part] of parts.entries()) {
      if (i > 0) await sleep(Math.min(50, context.quietMs));
      await wire.send(part);
    }
    for (const want of step.expect) {
      const shownWant = matching.crlf ? `${want}\r\n` : want;
      expected.push(show(shownWant));
      let line = await wire.line(context.deadline);
      while (
        line !== null &&
        matching.lab &&
        afterBcmd &&
        !REPLY_SHAPE.test(replyText(line, LAB))
      ) {
        got.push(show(line.raw));
        line = await wire.line(context.deadline);
      }
      if (line === null) {
        got.push(nothingMore(wire));
        return { ok: false, got, expected };
      }
      got.push(show(matching.crlf ? line.raw : line.text));
      afterBcmd = replyText(line, matching).startsWith('400 BCMD');
      if (replyText(line, matching) !== shownWant) return { ok: false, got, expected };
    }
  }
  return { ok: true, got, expected };
}

function nothingMore(wire: Wire): string {
  const partial = wire.unread;
  if (partial !== '') return `${show(partial)} (no LF)`;
  return wire.isClosed
    ? '(the server closed the connection)'
    : '(nothing, until the check timed out)';
}

/** A check that is one lockstep conversation on one connection. */
function conversation(
  name: string,
  profile: Profile,
  steps: readonly Step[],
  options: { matching?: Matching; thenCloses?: boolean } = {},
): Check {
  const matching = options.matching ?? (profile === 'lab' ? LAB : STRICT);
  return {
    name,
    profile,
    async run(context) {
      const wire = await context.open();
      const result = await converse(wire, steps, context, matching);
      const sent = shownSent(steps);
      const expected = result.expected.join(', ');
      if (!result.ok || options.thenCloses !== true) {
        return { passed: result.ok, detail: { sent, got: result.got.join(', '), expected } };
      }
      const closes = await wire.closed(context.deadline);
      return {
        passed: closes,
        detail: {
          sent,
          got: [...result.got, closes ? '(closed)' : '(still open)'].join(', '),
          expected: `${expected}, then the server closes`,
        },
      };
    },
  };
}

const lab: Check[] = [
  conversation('helo', 'lab', [{ send: 'HELO', expect: ['100 OK'] }]),
  conversation('data', 'lab', [{ send: 'DATA Hello world', expect: ['300 DRCV'] }]),
  conversation('unknown-command', 'lab', [{ send: 'USER', expect: ['400 BCMD'] }]),
  conversation(
    'session',
    'lab',
    [
      { send: 'HELO', expect: ['100 OK'] },
      { send: 'DATA Hello world', expect: ['300 DRCV'] },
      { send: 'USER', expect: ['400 BCMD'] },
      { send: 'DATA second', expect: ['300 DRCV'] },
      { send: 'QUIT', expect: ['200 BYE'] },
    ],
    { thenCloses: true },
  ),
  conversation('quit-closes', 'lab', [{ send: 'QUIT', expect: ['200 BYE'] }], { thenCloses: true }),
  {
    name: 'clients-in-turn',
    profile: 'lab',
    async run(context) {
      const steps: Step[] = [
        { send: 'HELO', expect: ['100 OK'] },
        { send: 'QUIT', expect: ['200 BYE'] },
      ];
      const got: string[] = [];
      for (let i = 1; i <= 3; i++) {
        const wire = await context.open();
        const result = await converse(wire, steps, context, LAB);
        got.push(`client ${i}: ${result.got.join(', ')}`);
        wire.close();
        if (!result.ok)
          return fail(steps, got, 'each of 3 clients, one after the other: "100 OK", "200 BYE"');
      }
      return pass(steps, got, 'each of 3 clients, one after the other: "100 OK", "200 BYE"');
    },
  },
  {
    // Last: a server this kills fails only this check.
    name: 'vanishing-client',
    profile: 'lab',
    async run(context) {
      // Reset while the server waits for its next command, as a client
      // killed mid-session does.
      const gone = await context.open();
      await gone.send('HELO');
      await gone.line(context.deadline);
      gone.reset();
      const halfway = await context.open();
      await halfway.send('DATA half');
      halfway.finish();
      await sleep(context.quietMs);
      const steps: Step[] = [{ send: 'HELO', expect: ['100 OK'] }];
      const expected = 'a new client after them: "100 OK"';
      let wire: Wire;
      try {
        wire = await context.open();
      } catch (error) {
        return fail(
          steps,
          [(error as Error).message],
          expected,
          'one client resets after HELO, one leaves mid-command; then ',
        );
      }
      const result = await converse(wire, steps, context, LAB);
      const check = result.ok ? pass : fail;
      return check(
        steps,
        result.got,
        expected,
        'one client resets after HELO, one leaves mid-command; then ',
      );
    },
  },
];

function pass(steps: readonly Step[], got: string[], expected: string, before = ''): CheckResult {
  return {
    passed: true,
    detail: { sent: before + shownSent(steps), got: got.join('; '), expected },
  };
}

function fail(steps: readonly Step[], got: string[], expected: string, before = ''): CheckResult {
  return {
    passed: false,
    detail: { sent: before + shownSent(steps), got: got.join('; '), expected },
  };
}

// No 400 BCMD here: what follows one is unknown-command's business.
const PIPELINED = Array.from({ length: 30 }, (_, i) => (i % 2 === 0 ? 'HELO' : `DATA ${i}`));

const strict: Check[] = [
  conversation(
    'crlf-replies',
    'strict',
    [
      { send: 'HELO\r\n', expect: ['100 OK'] },
      { send: 'DATA x\r\n', expect: ['300 DRCV'] },
      { send: 'QUIT\r\n', expect: ['200 BYE'] },
    ],
    { matching: { crlf: true, lab: false } },
  ),
  conversation('lf-requests', 'strict', [
    { send: 'HELO\n', expect: ['100 OK'] },
    { send: 'DATA x\n', expect: ['300 DRCV'] },
  ]),
  conversation('split-lines', 'strict', [
    { send: ['HE', 'LO\r', '\n'], expect: ['100 OK'] },
    { send: ['DATA Hel', 'lo world\r\n'], expect: ['300 DRCV'] },
  ]),
  conversation('merged-lines', 'strict', [
    { send: 'HELO\r\nDATA x\r\nUSER\r\n', expect: ['100 OK', '300 DRCV', '400 BCMD'] },
  ]),
  conversation('pipelining', 'strict', [
    {
      send: PIPELINED.map((line) => `${line}\r\n`).join(''),
      expect: PIPELINED.map((line) => (line === 'HELO' ? '100 OK' : '300 DRCV')),
    },
  ]),
  conversation('case-insensitive', 'strict', [
    { send: 'helo\r\n', expect: ['100 OK'] },
    { send: 'Data x\r\n', expect: ['300 DRCV'] },
    { send: 'quit\r\n', expect: ['200 BYE'] },
  ]),
  conversation('blanks', 'strict', [
    { send: '  HELO\t \r\n', expect: ['100 OK'] },
    { send: '\tDATA x\r\n', expect: ['300 DRCV'] },
    { send: ' QUIT \r\n', expect: ['200 BYE'] },
  ]),
  conversation('bare-data', 'strict', [
    { send: ['DATA\r\n', 'QUIT\r\n'], expect: ['300 DRCV'] },
    { send: 'HELO\r\n', expect: ['100 OK'] },
  ]),
  conversation('empty-lines', 'strict', [
    { send: ['DATA\r\n', '\r\n'], expect: ['300 DRCV'] },
    { send: '\r\n', expect: ['400 BCMD'] },
  ]),
  conversation('unknown-command', 'strict', [
    { send: 'USER\r\n', expect: ['400 BCMD'] },
    { send: 'HELO\r\n', expect: ['100 OK'] },
  ]),
  {
    name: 'nothing-before-payload',
    profile: 'strict',
    async run(context) {
      const wire = await context.open();
      await wire.send('DATA\r\n');
      const sent = `${show('DATA\r\n')}, (${context.quietMs} ms), ${show('Hello\r\n')}`;
      const expected = `nothing after "DATA\\r\\n"; "300 DRCV" after the payload line`;
      if (await wire.anything(performance.now() + context.quietMs)) {
        const early = (await wire.line(context.deadline)) ?? null;
        const got =
          early === null ? nothingMore(wire) : `${show(early.raw)} before the payload line`;
        return { passed: false, detail: { sent, got, expected } };
      }
      await wire.send('Hello\r\n');
      const reply = await wire.line(context.deadline);
      const got = reply === null ? nothingMore(wire) : show(reply.text);
      return {
        passed: reply?.text === '300 DRCV',
        detail: { sent, got: `(nothing), ${got}`, expected },
      };
    },
  },
  {
    name: 'half-close',
    profile: 'strict',
    async run(context) {
      const wire = await context.open();
      await wire.send('DATA x\r\n');
      wire.finish();
      const reply = await wire.line(context.deadline);
      const closes = await wire.closed(context.deadline);
      const got = `${reply === null ? nothingMore(wire) : show(reply.text)}, ${closes ? '(closed)' : '(still open)'}`;
      return {
        passed: reply?.text === '300 DRCV' && closes,
        detail: {
          sent: `${show('DATA x\r\n')}, then FIN (half-close)`,
          got,
          expected: '"300 DRCV", then the server closes',
        },
      };
    },
  },
  {
    name: 'no-banner',
    profile: 'strict',
    async run(context) {
      const wire = await context.open();
      const spoke = await wire.anything(performance.now() + context.quietMs);
      const got = spoke ? `${show(wire.unread)} before any request` : '(nothing)';
      return {
        passed: !spoke,
        detail: {
          sent: `(nothing, for ${context.quietMs} ms)`,
          got,
          expected: 'nothing: the client speaks first',
        },
      };
    },
  },
  conversation('quit-closes', 'strict', [{ send: 'QUIT\r\n', expect: ['200 BYE'] }], {
    thenCloses: true,
  }),
  {
    name: 'several-clients',
    profile: 'strict',
    async run(context) {
      const steps = (i: number): Step[] => [
        { send: 'HELO\r\n', expect: ['100 OK'] },
        { send: `DATA client ${i}\r\n`, expect: ['300 DRCV'] },
        { send: 'QUIT\r\n', expect: ['200 BYE'] },
      ];
      const wires = await Promise.all([1, 2, 3].map(() => context.open()));
      const results = await Promise.all(
        wires.map((wire, i) => converse(wire, steps(i + 1), context, STRICT)),
      );
      return {
        passed: results.every((result) => result.ok),
        detail: {
          sent: '3 clients connected at once, each: "HELO\\r\\n", "DATA client N\\r\\n", "QUIT\\r\\n"',
          got: results.map((result, i) => `client ${i + 1}: ${result.got.join(', ')}`).join('; '),
          expected: 'each: "100 OK", "300 DRCV", "200 BYE"',
        },
      };
    },
  },
  {
    name: 'sequential',
    profile: 'strict',
    informational: true,
    async run(context) {
      const first = await context.open();
      await first.send('HELO\r\n');
      const firstReply = await first.line(context.deadline);
      const second = await context.open();
      await second.send('HELO\r\n');
      const waitMs = Math.max(context.quietMs, 500);
      const secondReply = await second.line(Math.min(performance.now() + waitMs, context.deadline));
      const concurrent = firstReply !== null && secondReply !== null;
      return {
        passed: true,
        finding: concurrent ? 'concurrent' : 'sequential',
        detail: {
          sent: 'client 1: "HELO\\r\\n" and stays; client 2: "HELO\\r\\n"',
          got: `client 1: ${firstReply === null ? '(nothing)' : show(firstReply.text)}; client 2: ${secondReply === null ? `(nothing within ${waitMs} ms)` : show(secondReply.text)}`,
          expected: 'reported, not graded: whether client 2 is served while client 1 is connected',
        },
      };
    },
  },
];

const CHECKS: readonly Check[] = [...lab, ...strict];

export function checksOf(profile: Profile): Check[] {
  return CHECKS.filter((check) => check.profile === profile);
}

/** The outcome of one check, as reported. */
export interface GradedCheck extends CheckResult {
  readonly name: string;
  readonly informational: boolean;
}

/** Runs the checks one at a time, each bounded by `timeoutMs`, each with fresh connections. */
export async function runChecks(
  target: GradeTarget,
  checks: readonly Check[],
  timeoutMs: number,
  onResult: (result: GradedCheck) => void = () => undefined,
): Promise<GradedCheck[]> {
  const results: GradedCheck[] = [];
  for (const check of checks) {
    const wires: Wire[] = [];
    const deadline = performance.now() + timeoutMs;
    const context: CheckContext = {
      deadline,
      quietMs: Math.min(300, Math.floor(timeoutMs / 4)),
      open: async () => {
        const wire = await openWire(target, Math.max(1, deadline - performance.now()));
        wires.push(wire);
        return wire;
      },
    };
    let result: CheckResult;
    try {
      // The race is the last guard: a check that forgot a deadline still ends.
      result = await Promise.race([check.run(context), timedOut(timeoutMs + 1000)]);
    } catch (error) {
      result = {
        passed: false,
        detail: { sent: '(connecting)', got: (error as Error).message, expected: 'a connection' },
      };
    } finally {
      // A sequential server serves the next check only once these are gone.
      for (const wire of wires) wire.close();
    }
    const graded = { name: check.name, informational: check.informational === true, ...result };
    results.push(graded);
    onResult(graded);
  }
  return results;
}

async function timedOut(ms: number): Promise<CheckResult> {
  await sleep(ms, undefined, { ref: false });
  return {
    passed: false,
    detail: { sent: '', got: '(the check did not end in time)', expected: '' },
  };
}
