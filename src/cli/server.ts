/**
 * `helo server`: flags -> options, open the store, listen, and shut down
 * cleanly on SIGTERM / SIGINT (README, "Exit statuses and signals").
 */
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import {
  DEFAULT_STORE_URL,
  openStore,
  shownStoreUrl,
  storeModeWarning,
} from '../store/open-store.js';
import { ServerCounters } from '../server/observe/server-counters.js';
import { createLogger, flushLogger } from '../server/logger.js';
import { InvalidOptionError } from '../errors.js';
import {
  DEFAULTS,
  LOG_LEVELS,
  resolveServerOptions,
  SERVER_MODES,
  type LogLevel,
  type ServerMode,
  type ServerOptions,
} from '../server/options.js';
import { runServer } from '../server/run-server.js';
import { takeListenFds, type ActivationName } from '../server/transports/activation.js';
import type { StartServerOptions } from '../server/running-server.js';
import { exposureWarnings } from '../server/exposure.js';
import { openFilesWarning, readOpenFilesLimit } from '../server/fd-limit.js';
import { onReloadSignal, stopSignalReceived, watchStopSignals } from './stop-signals.js';
import {
  ADDRESS_FLAGS,
  formatHelp,
  hostFlag,
  parseFlags,
  secondsFlag,
  textFlag,
  UsageError,
  wholeNumberFlag,
  type CommandHelp,
  type ParsedFlags,
} from './args.js';

const HELP: CommandHelp = {
  usage: 'helo server [flags]',
  summary:
    'Runs the HELO/DATA/QUIT server. Every acknowledged payload (300 DRCV) is committed to the\n' +
    'store first. Logs go to stderr as JSON lines; the listening address goes to stdout.',
  flags: {
    host: {
      type: 'string',
      valueName: 'ADDR',
      default: DEFAULTS.host,
      description: 'address that every listener binds',
    },
    port: ADDRESS_FLAGS.port!,
    store: {
      type: 'string',
      valueName: 'URL',
      default: DEFAULT_STORE_URL,
      description: 'sqlite:PATH, memory: or postgres://USER@HOST[:PORT]/DATABASE',
    },
    mode: {
      type: 'string',
      valueName: 'MODE',
      default: DEFAULTS.mode,
      description: `concurrency model: ${SERVER_MODES.join('|')}`,
    },
    workers: {
      type: 'string',
      valueName: 'N',
      default: 'CPU count',
      description: 'worker processes in cluster mode',
    },
    threads: {
      type: 'string',
      valueName: 'N',
      default: 'CPU count',
      description: 'worker threads in threads mode',
    },
    'max-line': {
      type: 'string',
      valueName: 'BYTES',
      default: String(DEFAULTS.maxLineBytes),
      description: 'longest line without its terminator',
    },
    'idle-timeout': {
      type: 'string',
      valueName: 'SECONDS',
      default: String(DEFAULTS.idleTimeoutMs / 1000),
      description: 'close with 408 TOUT after this long without a line; 0 = off',
    },
    'max-connections': {
      type: 'string',
      valueName: 'N',
      default: String(DEFAULTS.maxConnections),
      description: 'server-wide limit; beyond it 503 BUSY',
    },
    'max-connections-per-ip': {
      type: 'string',
      valueName: 'N',
      default: '0',
      description: 'limit per client address; 0 = off',
    },
    'slow-reader-timeout': {
      type: 'string',
      valueName: 'SECONDS',
      default: String(DEFAULTS.slowReaderTimeoutMs / 1000),
      description: 'disconnect a client that does not read its replies for this long; 0 = off',
    },
    'unterminated-after-ms': {
      type: 'string',
      valueName: 'N',
      default: '0',
      description:
        'treat a partial line followed by N ms of silence as complete, for classroom\n' +
        'clients that send no newline (npm start uses 100); 0 = off',
    },
    telnet: {
      type: 'boolean',
      description:
        "take telnet's control sequences (Ctrl-C...) out of the stream and refuse its\n" +
        'options (npm start turns it on); off: payloads are byte-exact',
    },
    unix: {
      type: 'string',
      valueName: 'PATH',
      description: 'also listen on this Unix domain socket',
    },
    'unix-mode': {
      type: 'string',
      valueName: 'OCTAL',
      description: 'permissions of the Unix socket file, e.g. 660 (default: from the umask)',
    },
    'tls-port': {
      type: 'string',
      valueName: 'N',
      description: 'also listen for TLS on this port (needs --tls-cert and --tls-key)',
    },
    'tls-cert': { type: 'string', valueName: 'FILE', description: 'TLS certificate chain (PEM)' },
    'tls-key': { type: 'string', valueName: 'FILE', description: 'TLS private key (PEM)' },
    'tls-ca': {
      type: 'string',
      valueName: 'FILE',
      description: 'CA (PEM) that signs client certificates, for mutual TLS',
    },
    'tls-require-client-cert': {
      type: 'boolean',
      description: 'refuse TLS clients without a certificate signed by --tls-ca',
    },
    'tls-handshake-timeout': {
      type: 'string',
      valueName: 'SECONDS',
      default: String(DEFAULTS.tlsHandshakeTimeoutMs / 1000),
      description: 'cut off a TLS handshake that takes longer',
    },
    stdio: {
      type: 'boolean',
      description:
        'serve exactly one session on stdin/stdout and exit (inetd, systemd Accept=yes);\n' +
        'no listener is opened',
    },
    'udp-port': {
      type: 'string',
      valueName: 'N',
      description: 'also answer UDP datagrams on this port (one request per datagram)',
    },
    'http-port': {
      type: 'string',
      valueName: 'N',
      description:
        'also serve HTTP here (npm start uses 7778): the web client and dashboard on /,\n' +
        '/ws, /events, /metrics, /healthz, /readyz',
    },
    'http-token': {
      type: 'string',
      valueName: 'TOKEN',
      description:
        'access token for the HTTP port (all but /healthz, /readyz); made up and\n' +
        'printed when --host is not loopback and none is given. On the command line\n' +
        'other local users see it (ps): prefer HELO_HTTP_TOKEN or --http-token-file',
    },
    'http-token-file': {
      type: 'string',
      valueName: 'FILE',
      description: 'read the HTTP access token from the first line of this file',
    },
    'ws-origin': {
      type: 'string',
      valueName: 'ORIGIN',
      multiple: true,
      description:
        'another browser origin allowed on /ws (repeatable), e.g. https://lab.example.org',
    },
    'proxy-protocol': {
      type: 'boolean',
      description:
        'every TCP, TLS and Unix connection starts with a PROXY protocol v1 or v2 header\n' +
        '(behind a load balancer): the record keeps the real client as peer',
    },
    'proxy-allow': {
      type: 'string',
      valueName: 'CIDR[,CIDR...]',
      default: DEFAULTS.proxyAllow.join(','),
      description: 'sources trusted to send the header; others are closed without a reply',
    },
    'proxy-timeout': {
      type: 'string',
      valueName: 'SECONDS',
      default: String(DEFAULTS.proxyTimeoutMs / 1000),
      description: 'a header not complete this long after accept closes the connection',
    },
    'work-ms': {
      type: 'string',
      valueName: 'N',
      default: '0',
      description: 'experiment: each request waits N ms before its reply (I/O-bound work)',
    },
    'work-cpu-ms': {
      type: 'string',
      valueName: 'N',
      default: '0',
      description: 'experiment: each request keeps the CPU busy N ms (compute-bound work)',
    },
    'log-level': {
      type: 'string',
      valueName: 'LEVEL',
      default: DEFAULTS.logLevel,
      description: LOG_LEVELS.join('|'),
    },
  },
  notes:
    'Signals: SIGTERM or SIGINT (Ctrl-C) stop accepting, answer the requests already received,\n' +
    'send 503 BUSY to idle sessions and exit 0 within 10 seconds. SIGHUP reads the TLS files\n' +
    'again and never stops the server.\n' +
    'Exit status: 0 after a clean shutdown, 1 if the server cannot start, 2 for a bad flag.\n' +
    'Socket activation: with LISTEN_PID set to its pid, the server listens on the sockets passed\n' +
    'from fd 3 (LISTEN_FDS, LISTEN_FDNAMES tcp|tls|unix|http|udp) instead of binding.',
};

function optionalText(values: ParsedFlags['values'], name: string): string | null {
  return values[name] === undefined ? null : textFlag(values, name, '');
}

/** An extra listener's port, or null when its flag is absent (the listener is off). */
function optionalPortFlag(values: ParsedFlags['values'], name: string): number | null {
  return values[name] === undefined ? null : wholeNumberFlag(values, name, 0);
}

/** The flag behind each option, for resolveServerOptions' messages (`port must ...` -> `--port must ...`). */
const FLAG_OF: Readonly<Partial<Record<keyof ServerOptions, string>>> = {
  mode: 'mode',
  workers: 'workers',
  threads: 'threads',
  host: 'host',
  port: 'port',
  maxLineBytes: 'max-line',
  idleTimeoutMs: 'idle-timeout',
  maxConnections: 'max-connections',
  maxConnectionsPerIp: 'max-connections-per-ip',
  slowReaderTimeoutMs: 'slow-reader-timeout',
  unterminatedAfterMs: 'unterminated-after-ms',
  logLevel: 'log-level',
  workMs: 'work-ms',
  workCpuMs: 'work-cpu-ms',
  unixMode: 'unix-mode',
  tlsPort: 'tls-port',
  tlsHandshakeTimeoutMs: 'tls-handshake-timeout',
  udpPort: 'udp-port',
  httpPort: 'http-port',
  proxyAllow: 'proxy-allow',
  proxyTimeoutMs: 'proxy-timeout',
};

/**
 * The flags' values checked by resolveServerOptions, the one place that
 * knows the ranges; its message, in flag terms, is the one-line usage error.
 */
function resolveFlags(given: Partial<ServerOptions>): ServerOptions {
  try {
    return resolveServerOptions(given);
  } catch (error) {
    if (!(error instanceof InvalidOptionError)) throw error;
    const [option = '', ...rest] = error.message.split(' ');
    const flag = FLAG_OF[option as keyof ServerOptions];
    throw new UsageError(flag === undefined ? error.message : `--${flag} ${rest.join(' ')}`);
  }
}

/**
 * `--proxy-timeout`: unlike the other timeouts, 0 cannot mean "off" (a
 * header must come, docs/PROTOCOL.md §10), so it is refused here, in the
 * seconds it was given in rather than the milliseconds it becomes.
 */
function proxyTimeoutMs(values: ParsedFlags['values']): number {
  const ms = secondsFlag(values, 'proxy-timeout', DEFAULTS.proxyTimeoutMs);
  if (ms === 0) {
    throw new UsageError(
      `--proxy-timeout must be more than 0 seconds, got '${String(values['proxy-timeout'])}'`,
    );
  }
  return ms;
}

/** File permissions as octal digits, e.g. `660` or `0660`. */
function octalFlag(values: ParsedFlags['values'], name: string): number | null {
  const raw = values[name];
  if (raw === undefined) return null;
  if (typeof raw !== 'string' || !/^0?[0-7]{3}$/.test(raw.trim())) {
    throw new UsageError(`--${name} must be octal permissions such as 660, got '${String(raw)}'`);
  }
  return parseInt(raw.trim(), 8);
}

/**
 * The HTTP token from `--http-token`, `HELO_HTTP_TOKEN` or the first line of
 * `--http-token-file` (trimmed). A file or the environment keep it out of
 * the command line, which every local user can read (`ps`, /proc/PID/cmdline).
 */
function httpTokenOption(values: ParsedFlags['values']): string | null {
  const given = optionalText(values, 'http-token');
  const path = optionalText(values, 'http-token-file');
  if (path === null) return given;
  if (given !== null) throw new UsageError('give --http-token or --http-token-file, not both');
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new UsageError(`--http-token-file: cannot read ${path} (${code})`);
  }
  const token = text.split(/\r?\n/, 1)[0]!.trim();
  if (token === '') throw new UsageError(`--http-token-file: the first line of ${path} is empty`);
  return token;
}

/** True when `--http-token` itself is on the command line (not from HELO_HTTP_TOKEN). */
function tokenOnCommandLine(argv: readonly string[]): boolean {
  return argv.some((arg) => arg === '--http-token' || arg.startsWith('--http-token='));
}

/**
 * `--stdio`: one session on stdin/stdout, then exit 0. The session runs in
 * the event-loop server's own `Connection` (same limits, store, protocol); a
 * stop signal ends it as it ends any session (503 BUSY when idle).
 */
async function serveStdio(
  options: StartServerOptions,
  stopSignal: Promise<unknown>,
): Promise<number> {
  const { HeloServer } = await import('../server/server.js');
  const { StdioStream } = await import('../server/transports/stdio.js');
  const server = new HeloServer({ ...options, mode: 'event-loop', httpPort: null });
  const stream = new StdioStream();
  const closed = new Promise<void>((resolve) => stream.once('close', resolve));
  // The limits and the refusal path only read the peer's address and write, end or destroy.
  server.serveSocket(stream as unknown as Socket);
  await Promise.race([closed, stopSignal]);
  await server.close();
  return 0;
}

/** README: the process tree is gone and exit status is 0 within 10 seconds. */
const HARD_EXIT_MS = 9_500;

export async function run(argv: string[]): Promise<number> {
  const flags = parseFlags(HELP, argv);
  if (flags.help) {
    process.stdout.write(formatHelp(HELP));
    return 0;
  }
  if (flags.positionals.length > 0) {
    throw new UsageError(`unexpected argument '${flags.positionals[0]}'`);
  }
  // Read (and removed from the environment, so children never see them) first of all.
  const listenFds = takeListenFds();
  const { values } = flags;
  const givenToken = httpTokenOption(values);
  // A passed socket turns its listener on; its port flag is not needed (the socket wins).
  const activated = (name: ActivationName, flag: string): number | null =>
    listenFds?.[name] === undefined ? optionalPortFlag(values, flag) : 0;
  const options = resolveFlags({
    mode: textFlag(values, 'mode', DEFAULTS.mode) as ServerMode,
    workers: wholeNumberFlag(values, 'workers', DEFAULTS.workers),
    threads: wholeNumberFlag(values, 'threads', DEFAULTS.threads),
    workMs: wholeNumberFlag(values, 'work-ms', DEFAULTS.workMs),
    workCpuMs: wholeNumberFlag(values, 'work-cpu-ms', DEFAULTS.workCpuMs),
    host: hostFlag(values),
    port: wholeNumberFlag(values, 'port', DEFAULTS.port),
    maxLineBytes: wholeNumberFlag(values, 'max-line', DEFAULTS.maxLineBytes),
    idleTimeoutMs: secondsFlag(values, 'idle-timeout', DEFAULTS.idleTimeoutMs),
    maxConnections: wholeNumberFlag(values, 'max-connections', DEFAULTS.maxConnections),
    maxConnectionsPerIp: wholeNumberFlag(
      values,
      'max-connections-per-ip',
      DEFAULTS.maxConnectionsPerIp,
    ),
    slowReaderTimeoutMs: secondsFlag(values, 'slow-reader-timeout', DEFAULTS.slowReaderTimeoutMs),
    unterminatedAfterMs: wholeNumberFlag(
      values,
      'unterminated-after-ms',
      DEFAULTS.unterminatedAfterMs,
    ),
    telnet: values.telnet === true,
    logLevel: textFlag(values, 'log-level', DEFAULTS.logLevel) as LogLevel,
    unixPath: listenFds?.unix === undefined ? optionalText(values, 'unix') : null,
    unixMode: octalFlag(values, 'unix-mode'),
    tlsPort: activated('tls', 'tls-port'),
    httpPort: activated('http', 'http-port'),
    wsOrigins: Array.isArray(values['ws-origin']) ? values['ws-origin'] : [],
    httpToken: givenToken,
    udpPort: activated('udp', 'udp-port'),
    tlsCertPath: optionalText(values, 'tls-cert'),
    tlsKeyPath: optionalText(values, 'tls-key'),
    tlsCaPath: optionalText(values, 'tls-ca'),
    tlsRequireClientCert: values['tls-require-client-cert'] === true,
    tlsHandshakeTimeoutMs: Math.max(
      1,
      secondsFlag(values, 'tls-handshake-timeout', DEFAULTS.tlsHandshakeTimeoutMs),
    ),
    proxyProtocol: values['proxy-protocol'] === true,
    proxyAllow: textFlag(values, 'proxy-allow', DEFAULTS.proxyAllow.join(','))
      .split(',')
      .map((cidr) => cidr.trim()),
    proxyTimeoutMs: proxyTimeoutMs(values),
  });
  // resolveServerOptions made a token up: the HTTP port is reachable beyond loopback.
  const tokenGenerated = givenToken === null && options.httpToken !== null;
  const storeUrl = textFlag(values, 'store', DEFAULT_STORE_URL);
  const logger = createLogger(options.logLevel);
  for (const warning of exposureWarnings(options)) logger.warn(warning);
  // Node raises its soft limit to the hard one by itself; below that nothing can be done from here.
  const listeners = [options.unixPath, options.tlsPort, options.httpPort, options.udpPort].filter(
    (listener) => listener !== null,
  ).length;
  const fdWarning = openFilesWarning(readOpenFilesLimit(), options.maxConnections, 1 + listeners);
  if (fdWarning !== null) logger.warn(fdWarning);
  const stopSignal = watchStopSignals().then((signal) => {
    // README: the process is gone within 10 seconds, whatever happens below.
    setTimeout(() => {
      logger.error('shutdown took too long; exiting');
      flushLogger(logger);
      process.exit(0);
    }, HARD_EXIT_MS).unref();
    return signal;
  });

  // The store's commits are counted with the server's (`/metrics`).
  const counters = new ServerCounters();
  const store = await openStore(storeUrl, { onCommit: counters.onCommit });
  const modeWarning = storeModeWarning(storeUrl);
  if (modeWarning !== null) logger.warn(modeWarning);
  if (values.stdio === true) {
    const status = await serveStdio({ ...options, store, logger, counters }, stopSignal);
    await store.close();
    flushLogger(logger);
    return status;
  }
  if (stopSignalReceived() !== null) {
    // Asked to stop while starting: there is nothing to serve or drain.
    await store.close();
    flushLogger(logger);
    return 0;
  }
  let server;
  try {
    server = await runServer({ ...options, store, logger, counters, listenFds });
  } catch (error) {
    await store.close();
    throw error;
  }
  // A stop signal that came while the listeners opened: close at once,
  // without announcing addresses that are about to go away. Node hears of a
  // signal in the poll phase of the event loop, and opening the listeners may
  // end without one: two setImmediate hops put a poll phase in between.
  await nextTurn();
  await nextTurn();
  if (stopSignalReceived() === null) {
    // After start: a command line that cannot run says only why (one line).
    if (tokenOnCommandLine(argv)) {
      logger.warn(
        '--http-token on the command line is visible to other local users (ps); ' +
          'give it with HELO_HTTP_TOKEN or --http-token-file instead',
      );
    }
    const modeNote =
      options.mode === 'cluster'
        ? `cluster of ${options.workers} workers`
        : options.mode === 'threads'
          ? `threads mode, ${options.threads} worker threads`
          : `${options.mode} mode`;
    process.stdout.write(
      `helo server listening on ${server.url} (store ${shownStoreUrl(storeUrl)}, ${modeNote})\n`,
    );
    for (const url of server.urls.slice(1)) {
      process.stdout.write(`helo server listening on ${url}\n`);
      if (url.startsWith('ws://')) {
        // The page is at the root of the same port (docs/WEB.md: `/`).
        const page = `${url.slice(0, -'ws'.length).replace('ws://', 'http://')}`;
        const token = options.httpToken;
        const withToken = token === null ? page : `${page}?token=${token}`;
        process.stdout.write(`helo server web client and dashboard on ${withToken}\n`);
        if (tokenGenerated) {
          process.stdout.write(
            'helo server: the HTTP port is reachable beyond this machine, so it needs the token above\n',
          );
        }
      }
    }
  }
  // SIGHUP: read the TLS certificates again (renewed ones, without a restart).
  // (One received during start-up is answered now.)
  onReloadSignal(() => server.reloadTls());

  const stopped = await Promise.race([stopSignal, server.failure ?? new Promise<never>(() => {})]);
  if (stopped instanceof Error) {
    // A server that gives up exits non-zero with one line (main.ts prints it).
    await server.close();
    await store.close();
    flushLogger(logger);
    throw stopped;
  }
  logger.info({ signal: stopped }, 'signal received');
  let status = 0;
  try {
    await server.close();
    await store.close();
  } catch (error) {
    logger.error({ err: String(error) }, 'error while shutting down');
    status = 1;
  }
  flushLogger(logger);
  return status;
}

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
