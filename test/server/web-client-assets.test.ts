/**
 * WebClientAssets, the page's files on the HTTP port, behind a real HTTP
 * server on loopback: content types, caching headers and 304s, HEAD, the
 * security headers, and that nothing but the files read at start is served.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  CONTENT_SECURITY_POLICY,
  WebClientAssets,
  findWebDirectory,
} from '../../src/server/http/web-client.js';
import { REPO_ROOT } from '../../support/server-process.js';

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
}

/** Sends `path` exactly as given (no URL normalisation), as a hostile client would. */
function fetchRaw(
  port: number,
  path: string,
  method = 'GET',
  headers: Record<string, string> = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const outgoing = request({ host: '127.0.0.1', port, path, method, headers }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () =>
        resolve({
          status: response.statusCode ?? 0,
          headers: response.headers,
          body: Buffer.concat(chunks),
        }),
      );
    });
    outgoing.on('error', reject);
    outgoing.end();
  });
}

describe('WebClientAssets', () => {
  let server: Server;
  let port: number;
  const webDir = join(REPO_ROOT, 'web');

  before(async () => {
    const assets = WebClientAssets.load();
    server = createServer((incoming, response) => {
      const pathname = new URL(incoming.url ?? '/', 'http://x').pathname;
      if (!assets.serve(pathname, incoming, response)) {
        response.writeHead(404);
        response.end('not ours\n');
      }
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
  });

  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('finds web/ by walking up to package.json, from the built module as from the sources', () => {
    assert.equal(findWebDirectory(), webDir);
    assert.equal(findWebDirectory(join(REPO_ROOT, 'src', 'server', 'http')), webDir);
    assert.equal(findWebDirectory('/'), null);
  });

  it('serves / as index.html, directly, with its content type and security headers', async () => {
    const answer = await fetchRaw(port, '/');
    assert.equal(answer.status, 200);
    assert.equal(answer.headers['content-type'], 'text/html; charset=utf-8');
    assert.deepEqual(answer.body, readFileSync(join(webDir, 'index.html')));
    assert.equal(answer.headers['content-security-policy'], CONTENT_SECURITY_POLICY);
    assert.match(CONTENT_SECURITY_POLICY, /default-src 'self'; connect-src 'self'/);
    assert.equal(answer.headers['x-content-type-options'], 'nosniff');
    assert.equal(answer.headers['referrer-policy'], 'no-referrer');
    assert.equal(answer.headers['cache-control'], 'no-cache');
    assert.match(String(answer.headers.etag), /^"[\w-]+"$/);
    assert.ok(answer.headers['last-modified']);
  });

  it('gives each asset its content type', async () => {
    const expected: Record<string, string> = {
      '/app.js': 'text/javascript; charset=utf-8',
      '/style.css': 'text/css; charset=utf-8',
      '/favicon.svg': 'image/svg+xml',
    };
    for (const [path, type] of Object.entries(expected)) {
      const answer = await fetchRaw(port, path);
      assert.equal(answer.status, 200, path);
      assert.equal(answer.headers['content-type'], type, path);
      assert.deepEqual(answer.body, readFileSync(join(webDir, path.slice(1))), path);
    }
  });

  it('answers 304 to a matching If-None-Match or a recent If-Modified-Since', async () => {
    const first = await fetchRaw(port, '/app.js');
    const etag = String(first.headers.etag);
    const byTag = await fetchRaw(port, '/app.js', 'GET', { 'if-none-match': `"other", ${etag}` });
    assert.equal(byTag.status, 304);
    assert.equal(byTag.body.length, 0);
    const stale = await fetchRaw(port, '/app.js', 'GET', { 'if-none-match': '"other"' });
    assert.equal(stale.status, 200);
    const byDate = await fetchRaw(port, '/app.js', 'GET', {
      'if-modified-since': String(first.headers['last-modified']),
    });
    assert.equal(byDate.status, 304);
  });

  it('answers HEAD with the headers and no body, and other methods with 405', async () => {
    const head = await fetchRaw(port, '/style.css', 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(
      Number(head.headers['content-length']),
      readFileSync(join(webDir, 'style.css')).length,
    );
    assert.equal(head.body.length, 0);
    const post = await fetchRaw(port, '/', 'POST');
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, 'GET, HEAD');
  });

  it('serves nothing but the files it read, under their exact names', async () => {
    for (const path of [
      '/nope.js',
      '/../package.json',
      '/%2e%2e/package.json',
      '/..%2fpackage.json',
      '/web/index.html',
      '/App.js',
      '/app.js/',
      '/events-not-here',
    ]) {
      const answer = await fetchRaw(port, path);
      assert.equal(answer.status, 404, path);
      assert.equal(answer.body.toString(), 'not ours\n', path);
    }
  });

  it('serves nothing without a web directory', () => {
    assert.deepEqual(WebClientAssets.load(null).paths, []);
  });
});
