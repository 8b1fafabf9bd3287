/**
 * The baseline server that `--ceiling` and `npm run bench` measure against:
 * src/loadgen/baseline-server.ts, a raw-socket server tuned as far as Node goes,
 * that answers exactly what helo answers to the helo workloads. For any
 * other plan it is told the replies to send (a ReplyScript), so that it is
 * the fastest possible server of that exchange.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type ChildServer, startChildServer } from './child-server.js';
import type { Exchange, LoadPlan } from './load-plan.js';
import { ProcessError } from '../errors.js';

/** One step of a reply script: after `lines` request lines, send `reply` (base64). */
export interface ReplyStep {
  readonly lines: number;
  readonly reply: string;
}

/** Per connection: the setup steps once, then the body steps in a cycle. */
export interface ReplyScript {
  readonly setup: readonly ReplyStep[];
  readonly body: readonly ReplyStep[];
}

/** The compiled baseline server, next to this module in dist/src/loadgen/. */
export const BASELINE_SERVER_PATH = fileURLToPath(new URL('./baseline-server.js', import.meta.url));

/** What the baseline must answer to run `plan` as a well-behaved server would. */
export function replyScriptFor(plan: LoadPlan): ReplyScript {
  const step = (exchange: Exchange): ReplyStep => {
    const lines = exchange.request.reduce((count, byte) => count + (byte === 0x0a ? 1 : 0), 0);
    const expected = exchange.reply.lines;
    // Any reply will do: send the shortest lines that count as one each.
    const reply =
      expected === null
        ? Buffer.from('OK\r\n'.repeat(exchange.reply.lineCount))
        : Buffer.concat(expected);
    return { lines, reply: reply.toString('base64') };
  };
  return { setup: plan.setup.map(step), body: plan.body.map(step) };
}

/**
 * Starts the baseline server on a free loopback port. Without a script it
 * speaks helo's replies (HELO, DATA, QUIT); with one, it plays the script.
 */
export async function startBaselineServer(script: ReplyScript | null = null): Promise<ChildServer> {
  if (!existsSync(BASELINE_SERVER_PATH)) {
    throw new ProcessError(
      `the baseline server is not built (${BASELINE_SERVER_PATH}); run npm run build`,
    );
  }
  const args = [BASELINE_SERVER_PATH, '--port', '0', '--managed'];
  if (script !== null) {
    args.push('--reply-script', Buffer.from(JSON.stringify(script)).toString('base64'));
  }
  return startChildServer({ name: 'baseline server', args });
}
