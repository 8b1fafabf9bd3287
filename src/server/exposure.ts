/**
 * Who can reach the server. By default every listener binds 127.0.0.1, so
 * only this machine can (docs/PROTOCOL.md §1). Binding anything else puts the
 * protocol, and with `--http-port` the dashboard that shows stored
 * records, on the network: the server then says so at start, and the HTTP
 * port asks for an access token.
 */
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';

/** True for addresses only this machine can reach: 127.0.0.0/8, ::1, localhost. */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (bare === 'localhost' || bare === '::1') return true;
  if (isIP(bare) === 4) return bare.startsWith('127.');
  // IPv4-mapped loopback, e.g. ::ffff:127.0.0.1
  return /^::ffff:127\./.test(bare);
}

export interface ExposureOptions {
  readonly host: string;
  readonly tlsPort: number | null;
  readonly udpPort: number | null;
  readonly httpPort: number | null;
}

/** The start-up warnings for a server reachable from the network; none on loopback. */
export function exposureWarnings(options: ExposureOptions): string[] {
  if (isLoopbackHost(options.host)) return [];
  const where =
    options.host === '0.0.0.0' || options.host === '::' ? 'all interfaces' : options.host;
  const plain = ['the TCP port'];
  if (options.udpPort !== null) plain.push('UDP');
  if (options.httpPort !== null) plain.push('the HTTP port');
  const advice =
    options.tlsPort === null
      ? 'use --tls-port (with --tls-cert/--tls-key) for clients on other machines, or --host 127.0.0.1'
      : 'point remote clients at the TLS port only, or firewall the others';
  return [
    `listening on ${where} without TLS on ${plain.join(', ')}: payloads cross the network in clear text; ${advice}`,
  ];
}

/** A token for `--http-token` when none was given: 128 random bits, URL-safe. */
function generateHttpToken(): string {
  return randomBytes(16).toString('base64url');
}

/**
 * The token the HTTP port requires: the one given, or, when the port is
 * reachable beyond loopback and none was given, a new one (printed at
 * start). Null when no token is needed.
 */
export function httpTokenFor(
  host: string,
  httpPort: number | null,
  given: string | null,
): { readonly token: string | null; readonly generated: boolean } {
  if (given !== null) return { token: given, generated: false };
  if (httpPort === null || isLoopbackHost(host)) return { token: null, generated: false };
  return { token: generateHttpToken(), generated: true };
}
