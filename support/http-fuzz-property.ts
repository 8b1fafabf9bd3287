/**
 * "No input from a client ends the server", on the HTTP port, as a
 * property: fast-check makes up requests (request lines, the headers the
 * port looks at, bodies, pipelining, half-closes), each is sent over a raw
 * socket to a live `helo server` process, and after every one the process
 * must be alive and still answer `/healthz` (and, every few cases, a
 * protocol client `100 OK`). Shared by `npm test` (http-fuzz.test.ts) and
 * `npm run fuzz -- --http` (bench/fuzz.ts), which replays a failure from
 * its seed and path.
 */
import { connect } from 'node:net';
import fc from 'fast-check';
import type { FuzzProperty } from './fuzz-properties.js';
import { spawnWebServer, type WebServer } from './web-server.js';

/** One case: the bytes of what a client sends, and how it leaves. */
export interface HttpCase {
  /** Latin1 string: one character per byte, so counterexamples print readably. */
  readonly chunks: readonly string[];
  /** 'end': half-close after sending; 'wait': wait for an answer, then reset. */
  readonly leave: 'end' | 'wait';
}

const CRLF_OR_LF = fc.constantFrom('\r\n', '\r\n', '\r\n', '\n', '\r', '');

/** Bytes of any value, as latin1. */
const anyBytes = (maxLength: number): fc.Arbitrary<string> =>
  fc.uint8Array({ maxLength }).map((bytes) => Buffer.from(bytes).toString('latin1'));

const METHOD = fc.oneof(
  fc.constantFrom('GET', 'GET', 'GET', 'HEAD', 'POST', 'PUT', 'OPTIONS', 'CONNECT', 'PRI', 'get'),
  fc.string({ maxLength: 8 }),
);

const TARGET = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constantFrom(
      '/',
      '/ws',
      '/events',
      '/metrics',
      '/healthz',
      '/readyz',
      '/index.html',
      '/app.js',
      '/style.css',
      '/nope',
      '//',
      '///',
      '/\\',
      '//x:99999/',
      '//[',
      'http://evil/',
      'http://127.0.0.1/metrics',
      '*',
      '%',
      '/%zz',
      '/ws?token=x',
      '/?token=%',
      '/..%2f..%2fetc',
      '/web/../package.json',
      '127.0.0.1:80',
    ),
  },
  { weight: 2, arbitrary: fc.webPath() },
  { weight: 1, arbitrary: fc.string({ maxLength: 40 }).map((path) => `/${path}`) },
  { weight: 1, arbitrary: anyBytes(40) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 20_000 }).map((n) => `/${'a'.repeat(n)}`) },
);

const VERSION = fc.constantFrom(
  'HTTP/1.1',
  'HTTP/1.1',
  'HTTP/1.1',
  'HTTP/1.0',
  'HTTP/2.0',
  'HTTP/0.9',
  'http/1.1',
  'HTTP/1.',
  '',
);

function headerArbitrary(httpPort: number): fc.Arbitrary<string> {
  const own = [`127.0.0.1:${httpPort}`, `localhost:${httpPort}`, `[::1]:${httpPort}`];
  const known: [string, fc.Arbitrary<string>][] = [
    ['Host', fc.constantFrom(...own, ...own, 'evil.example:7778', 'evil.example', '', 'a b', '[')],
    ['Origin', fc.constantFrom(`http://127.0.0.1:${httpPort}`, 'https://evil.example', 'null', '')],
    ['Upgrade', fc.constantFrom('websocket', 'WebSocket', 'h2c', '', 'websocket, foo')],
    ['Connection', fc.constantFrom('Upgrade', 'upgrade, keep-alive', 'keep-alive', 'close', '')],
    ['Sec-WebSocket-Key', fc.constantFrom('dGhlIHNhbXBsZSBub25jZQ==', '', 'short', '!!!!')],
    ['Sec-WebSocket-Version', fc.constantFrom('13', '8', '', '99999999999999999999')],
    ['Sec-WebSocket-Extensions', fc.constantFrom('permessage-deflate', 'x; y=', ';;;')],
    ['Sec-WebSocket-Protocol', fc.constantFrom('helo', '', ',,,')],
    ['Authorization', fc.constantFrom('Bearer x', 'Bearer', 'Basic Zm9vOmJhcg==', '')],
    ['Cookie', fc.constantFrom('helo_token=x', 'helo_token=', '=;=;', 'a=b; helo_token=%')],
    [
      'Content-Length',
      fc.constantFrom('0', '5', '100', '-1', 'abc', '99999999999999999999', '1, 2'),
    ],
    ['Transfer-Encoding', fc.constantFrom('chunked', 'gzip', 'chunked, chunked', 'identity', '')],
    ['Expect', fc.constantFrom('100-continue', 'x')],
    ['If-None-Match', fc.constantFrom('*', '"x"', 'W/"')],
    ['Accept-Encoding', fc.constantFrom('gzip', 'br, *;q=0', '')],
  ];
  const knownHeader = fc.oneof(
    ...known.map(([name, value]) => value.map((text) => `${name}: ${text}`)),
  );
  const garbage = fc.oneof(
    fc
      .tuple(fc.string({ maxLength: 12 }), fc.string({ maxLength: 30 }))
      .map(([n, v]) => `${n}: ${v}`),
    anyBytes(40),
  );
  return fc.oneof({ weight: 5, arbitrary: knownHeader }, { weight: 1, arbitrary: garbage });
}

const BODY = fc.oneof(
  { weight: 4, arbitrary: fc.constant('') },
  {
    weight: 1,
    arbitrary: fc.constantFrom('hello', '5\r\nhello\r\n0\r\n\r\n', 'ffffffffff\r\n', '0\r\n\r\n'),
  },
  { weight: 1, arbitrary: anyBytes(300) },
);

function requestArbitrary(httpPort: number): fc.Arbitrary<string> {
  return fc
    .record({
      method: METHOD,
      target: TARGET,
      version: VERSION,
      headers: fc.array(headerArbitrary(httpPort), { maxLength: 10 }),
      eol: CRLF_OR_LF,
      body: BODY,
      isHeadComplete: fc.constantFrom(true, true, true, true, false),
    })
    .map(({ method, target, version, headers, eol, body, isHeadComplete }) => {
      const line = `${method} ${target} ${version}`.replace(/ $/, '');
      const head = [line, ...headers].join(eol) + eol;
      return isHeadComplete ? `${head}${eol}${body}` : head;
    });
}

/** Requests, one to three of them pipelined, cut into chunks at random points. */
export function httpCaseArbitrary(httpPort: number): fc.Arbitrary<HttpCase> {
  return fc
    .record({
      requests: fc.array(requestArbitrary(httpPort), { minLength: 1, maxLength: 3 }),
      cuts: fc.array(fc.nat(), { maxLength: 2 }),
      leave: fc.constantFrom<HttpCase['leave']>('end', 'end', 'wait'),
    })
    .map(({ requests, cuts, leave }) => {
      const bytes = requests.join('');
      const points = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort(
        (a, b) => a - b,
      );
      const chunks: string[] = [];
      let start = 0;
      for (const point of points) {
        chunks.push(bytes.slice(start, point));
        start = point;
      }
      chunks.push(bytes.slice(start));
      return { chunks: chunks.filter((chunk) => chunk.length > 0), leave };
    });
}

/** How long one case may take before the client gives up on it (the server may not answer). */
const CASE_TIMEOUT_MS = 300;

/** Sends one case; resolves once the server closed, answered ('wait'), or the time is up. */
export function sendCase(port: number, httpCase: HttpCase): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const done = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve();
    };
    const timer = setTimeout(done, CASE_TIMEOUT_MS);
    socket.on('error', done);
    socket.on('close', done);
    socket.on('data', () => {
      // An answer came: enough for 'wait'; with 'end', let the server close.
      if (httpCase.leave === 'wait') setTimeout(done, 5);
    });
    socket.on('connect', () => {
      for (const chunk of httpCase.chunks) socket.write(Buffer.from(chunk, 'latin1'));
      if (httpCase.leave === 'end') socket.end();
    });
  });
}

/** A live server the property runs against. */
export interface LiveServer {
  readonly httpPort: number;
  readonly tcpPort: number;
  /** Null while the process runs; otherwise how it ended, and its last log lines. */
  death(): string | null;
}

export function fromWebServer(web: WebServer): LiveServer {
  const { child } = web.server;
  return {
    httpPort: web.httpPort,
    tcpPort: web.tcpPort,
    death: () =>
      child.exitCode === null && child.signalCode === null
        ? null
        : `exit ${child.exitCode ?? child.signalCode}; stderr: ${web.server.stderr().slice(-2000)}`,
  };
}

/** One exchange on a fresh connection: resolves with everything received before the close. */
function exchange(port: number, bytes: string, timeoutMs = 2_000): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let received = '';
    const done = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(received);
    };
    const timer = setTimeout(done, timeoutMs);
    socket.setEncoding('latin1');
    socket.on('data', (text: string) => {
      received += text;
      if (received.includes('\r\n') && !received.startsWith('HTTP/')) done();
    });
    socket.on('error', done);
    socket.on('close', done);
    socket.on('connect', () => socket.write(bytes));
  });
}

/** Throws unless the server is alive and serves HTTP (and, when asked, the protocol). */
export async function assertServes(server: LiveServer, alsoProtocol: boolean): Promise<void> {
  const health = await exchange(
    server.httpPort,
    `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${server.httpPort}\r\nConnection: close\r\n\r\n`,
  );
  const death = server.death();
  if (death !== null) throw new Error(`the server died: ${death}`);
  if (!health.startsWith('HTTP/1.1 200 ')) {
    throw new Error(`/healthz answered ${JSON.stringify(health.slice(0, 200))}`);
  }
  if (alsoProtocol) {
    const reply = await exchange(server.tcpPort, 'HELO\r\n');
    if (reply !== '100 OK\r\n') throw new Error(`HELO answered ${JSON.stringify(reply)}`);
  }
}

/**
 * No shrinking: once the server is dead every smaller case fails too, and
 * shrinking would report one that did not kill it. The case reported is the
 * one after which the server was found dead.
 */
export const LIVE_SERVER_PARAMETERS = { endOnFailure: true } as const;

export function httpSurvivesProperty(server: LiveServer): fc.IAsyncProperty<[HttpCase]> {
  let cases = 0;
  return fc.asyncProperty(httpCaseArbitrary(server.httpPort), async (httpCase) => {
    await sendCase(server.httpPort, httpCase);
    await assertServes(server, ++cases % 25 === 0);
  });
}

/**
 * The property as `npm run fuzz -- --http` runs it: the server process is
 * started on first use and stopped by `stop()`.
 */
export function httpFuzzProperty(): FuzzProperty & { stop(): Promise<void> } {
  let web: Promise<WebServer> | null = null;
  return {
    name: 'http',
    title: 'the HTTP port survives any request and keeps serving',
    testRuns: 1500,
    weight: 1,
    check: async (parameters) => {
      web ??= spawnWebServer(['--store', 'memory:']);
      const property = httpSurvivesProperty(fromWebServer(await web));
      parameters = { ...parameters, ...LIVE_SERVER_PARAMETERS };
      return (await fc.check(
        property,
        parameters as fc.Parameters<[HttpCase]>,
      )) as fc.RunDetails<unknown>;
    },
    stop: async () => {
      if (web !== null) await (await web).server.stop();
    },
  };
}
