/**
 * Checks that the target accepts a connection before a load starts, so that
 * a wrong address is one clear line (the client library's wording, e.g.
 * `connection refused at 127.0.0.1:7777 — is the server running?`) and not
 * a report full of errors. Nothing is sent.
 */
import { connect } from '../client/client.js';

export async function probeTarget(
  host: string,
  port: number,
  timeoutMs: number,
  waitMs: number,
): Promise<void> {
  const client = await connect({ host, port, timeoutMs, connectTimeoutMs: timeoutMs, waitMs });
  await client.close();
}
