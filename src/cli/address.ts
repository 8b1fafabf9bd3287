/**
 * Where a client subcommand (`helo client`, `helo send`, `helo bench`)
 * connects: the ADDRESS argument (any form of docs/TRANSPORTS.md, parsed by the client
 * library's `parseAddress`), `--host`/`--port`, the TLS files, and the
 * `--timeout` and `--wait` flags that go with them.
 */
import { readFileSync } from 'node:fs';
import { parseAddress as parseAnyAddress, type HeloAddress } from '../client/address.js';
import type { ClientTlsOptions, ConnectOptions } from '../client/client.js';
import { InvalidOptionError } from '../errors.js';
import { DEFAULT_CLIENT_TIMEOUT_MS, DEFAULT_PORT } from '../defaults.js';
import {
  ADDRESS_FLAGS,
  type FlagSpecs,
  hostFlag,
  intFlag,
  type ParsedFlags,
  secondsFlag,
  UsageError,
} from './args.js';

export { hasScheme } from '../client/address.js';

/** `--host`, `--port`, TLS files, `--timeout` and `--wait`, for every subcommand that connects. */
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
  'tls-ca': {
    type: 'string',
    valueName: 'FILE',
    description: 'tls:// only: CA (PEM) that signs the server certificate',
  },
  'tls-cert': {
    type: 'string',
    valueName: 'FILE',
    description: 'tls:// only: client certificate (PEM), for mutual TLS',
  },
  'tls-key': { type: 'string', valueName: 'FILE', description: 'tls:// only: client key (PEM)' },
  'tls-servername': {
    type: 'string',
    valueName: 'NAME',
    description: 'tls:// only: name to check the server certificate against (default: the host)',
  },
};

/** Parses an address for a CLI subcommand: a bad one is a usage error (exit 2). */
export function parseAddress(text: string, defaultPort: number): HeloAddress {
  try {
    return parseAnyAddress(text, defaultPort);
  } catch (error) {
    if (error instanceof InvalidOptionError) throw new UsageError(error.message);
    throw error;
  }
}

/** Connection options from the flags, `address` (if given) winning over `--host`/`--port`. */
export function connectOptionsFromFlags(
  values: ParsedFlags['values'],
  address: string | undefined,
): ConnectOptions & { readonly target: HeloAddress } {
  // A client connects to a real port: 0 is a bad command line here, not a runtime error.
  const port = intFlag(values, 'port', DEFAULT_PORT, 1, 65535);
  const target: HeloAddress =
    address === undefined
      ? { transport: 'tcp', host: hostFlag(values), port }
      : parseAddress(address, port);
  const common = {
    target,
    timeoutMs: secondsFlag(values, 'timeout', DEFAULT_CLIENT_TIMEOUT_MS),
    waitMs: secondsFlag(values, 'wait', 0),
  };
  switch (target.transport) {
    case 'unix':
      return { ...common, path: target.path };
    case 'ws':
      return { ...common, address: target.url };
    case 'tls':
      return { ...common, host: target.host, port: target.port, tls: tlsOptionsFromFlags(values) };
    default:
      return { ...common, host: target.host, port: target.port };
  }
}

function tlsOptionsFromFlags(values: ParsedFlags['values']): ClientTlsOptions {
  const file = (name: string): Buffer | undefined => {
    const path = values[name];
    if (typeof path !== 'string') return undefined;
    try {
      return readFileSync(path);
    } catch (error) {
      const reason = (error as NodeJS.ErrnoException).code ?? String(error);
      throw new UsageError(`--${name}: cannot read ${path} (${reason})`);
    }
  };
  const ca = file('tls-ca');
  const cert = file('tls-cert');
  const key = file('tls-key');
  const servername = values['tls-servername'];
  return {
    ...(ca === undefined ? {} : { ca }),
    ...(cert === undefined ? {} : { cert }),
    ...(key === undefined ? {} : { key }),
    ...(typeof servername === 'string' ? { servername } : {}),
  };
}
