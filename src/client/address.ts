/**
 * One string for where a server is (docs/TRANSPORTS.md): `tcp://host:port`,
 * `tls://host:port`, `unix:/path`, `udp://host:port`, `ws://host:port/ws`,
 * or a bare `host:port` / `host`, which mean TCP.
 */
import { InvalidOptionError } from '../errors.js';
import { DEFAULT_PORT } from '../defaults.js';

export type HeloAddress =
  | { readonly transport: 'tcp' | 'tls' | 'udp'; readonly host: string; readonly port: number }
  | { readonly transport: 'unix'; readonly path: string }
  | { readonly transport: 'ws'; readonly url: string };

const SCHEME = /^([a-z][a-z0-9+.-]*):\/\//i;
// `unix:/path`, but not a host called "unix" with a port (`unix:7777`).
const UNIX_SCHEME = /^unix:(?!\d+$)/i;
const HOST_PORT = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:/[\]@]+))(?::([0-9]+))?$/;
const HOST_PORT_SCHEMES = new Set(['tcp', 'tls', 'udp']);
const KNOWN_SCHEMES = new Set([...HOST_PORT_SCHEMES, 'ws', 'wss', 'unix']);

const FORMS = 'tcp://HOST:PORT, tls://HOST:PORT, unix:/PATH, udp://HOST:PORT, ws://HOST:PORT/ws';

/** True when `text` names one of helo's transports (how `helo send` tells an address from a payload). */
export function hasScheme(text: string): boolean {
  // Only helo's own transports: `helo send https://example.com` sends a URL.
  const scheme = SCHEME.exec(text)?.[1]?.toLowerCase();
  return (scheme !== undefined && KNOWN_SCHEMES.has(scheme)) || UNIX_SCHEME.test(text);
}

/** Parses an address; `defaultPort` completes a bare `host`. */
export function parseAddress(text: string, defaultPort = DEFAULT_PORT): HeloAddress {
  if (UNIX_SCHEME.test(text)) {
    const path = text.slice('unix:'.length).replace(/^\/\/(?=\/)/, '');
    if (path === '') throw new InvalidOptionError(`invalid address '${text}': no socket path`);
    return { transport: 'unix', path };
  }
  const scheme = SCHEME.exec(text)?.[1]?.toLowerCase() ?? null;
  if (scheme === 'ws' || scheme === 'wss') {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw new InvalidOptionError(`invalid address '${text}'; use ws://HOST:PORT/ws`);
    }
    return { transport: 'ws', url: url.href };
  }
  if (scheme !== null && !HOST_PORT_SCHEMES.has(scheme)) {
    throw new InvalidOptionError(`unknown address scheme in '${text}'; use ${FORMS}`);
  }
  const transport = (scheme ?? 'tcp') as 'tcp' | 'tls' | 'udp';
  const rest = scheme === null ? text : text.slice(scheme.length + '://'.length);
  const match = HOST_PORT.exec(rest);
  if (match === null) throw new InvalidOptionError(`invalid address '${text}'; use ${FORMS}`);
  const host = match[1] ?? match[2]!;
  if (match[3] === undefined) return { transport, host, port: defaultPort };
  const port = Number(match[3]);
  if (port < 1 || port > 65535) {
    throw new InvalidOptionError(`the port in '${text}' must be between 1 and 65535`);
  }
  return { transport, host, port };
}
