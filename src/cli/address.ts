/**
 * Where a client subcommand (`helo client`, `helo send`) connects: the
 * ADDRESS argument, `--host`/`--port`, and the `--timeout` and `--wait`
 * flags that go with them (cli.md).
 */
import type { ConnectOptions } from '../client/client.js';
import {
  ADDRESS_FLAGS,
  type FlagSpecs,
  hostFlag,
  intFlag,
  type ParsedFlags,
  secondsFlag,
  UsageError,
} from './args.js';

/** `--host`, `--port`, `--timeout` and `--wait`, for every subcommand that connects. */
export const CONNECTION_FLAGS: FlagSpecs = {
  ...ADDRESS_FLAGS,
  timeout: {
    type: 'string',
    valueName: 'SECONDS',
    default: '10',
    description: 'longest wait for each reply; 0 waits forever',
  },
  wait: {
    type: 'string',
    valueName: 'SECONDS',
    default: '0',
    description: 'keep retrying the connection this long while the server is not up yet',
  },
};

const SCHEME = /^([a-z][a-z0-9+.-]*):\/\//i;
// `unix:/path`, but not a host called "unix" with a port (`unix:7777`).
const UNIX_SCHEME = /^unix:(?!\d+$)/i;
const PLANNED_SCHEMES = new Set(['tls', 'unix', 'udp', 'ws', 'wss']);
const HOST_PORT = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:/[\]@]+))(?::([0-9]+))?$/;

/** Host, port, timeout and wait from the flags, `address` (if given) winning. */
export function connectOptionsFromFlags(
  values: ParsedFlags['values'],
  address: string | undefined,
): ConnectOptions {
  // A client connects to a real port: 0 is a bad command line here, not a runtime error.
  const port = intFlag(values, 'port', 7777, 1, 65535);
  const target =
    address === undefined ? { host: hostFlag(values), port } : parseAddress(address, port);
  return {
    ...target,
    timeoutMs: secondsFlag(values, 'timeout', 10_000),
    waitMs: secondsFlag(values, 'wait', 0),
  };
}

/** True when `text` names a transport (`tcp://…`, `unix:/…`): how `helo send` tells an address from a payload. */
export function hasScheme(text: string): boolean {
  // Only helo's own transports: `helo send https://example.com` sends a URL.
  const scheme = SCHEME.exec(text)?.[1]?.toLowerCase();
  return (
    scheme === 'tcp' ||
    (scheme !== undefined && PLANNED_SCHEMES.has(scheme)) ||
    UNIX_SCHEME.test(text)
  );
}

/**
 * `tcp://HOST:PORT`, `HOST:PORT` or `HOST` (then `defaultPort`). The other
 * transports of cli.md are named but not supported yet.
 */
export function parseAddress(text: string, defaultPort: number): { host: string; port: number } {
  const scheme = SCHEME.exec(text)?.[1]?.toLowerCase() ?? (UNIX_SCHEME.test(text) ? 'unix' : null);
  if (scheme !== null && scheme !== 'tcp') {
    if (PLANNED_SCHEMES.has(scheme)) {
      throw new UsageError(
        `${scheme} addresses are not supported yet ('${text}'); use tcp://HOST:PORT`,
      );
    }
    throw new UsageError(`unknown address scheme in '${text}'; use tcp://HOST:PORT or HOST:PORT`);
  }
  const rest = scheme === 'tcp' ? text.slice('tcp://'.length) : text;
  const match = HOST_PORT.exec(rest);
  if (match === null) {
    throw new UsageError(`invalid address '${text}'; use tcp://HOST:PORT or HOST:PORT`);
  }
  const host = match[1] ?? match[2]!;
  if (match[3] === undefined) return { host, port: defaultPort };
  const port = Number(match[3]);
  if (port < 1 || port > 65535) {
    throw new UsageError(`the port in '${text}' must be between 1 and 65535`);
  }
  return { host, port };
}
