/**
 * The browser page (web client and dashboard) served on the HTTP port.
 *
 * The files of `web/` are read once, when the server starts, and only those
 * files are served, each under its exact name: a request path is looked up
 * in a map, never joined to a directory, so `/../package.json` or
 * `/%2e%2e/…` cannot reach anything else. The page is served as written (no
 * build step) and fetches nothing from elsewhere, which the
 * Content-Security-Policy below enforces in the browser.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
};

/**
 * `'self'` covers ws:// to the page's own host and port in CSP Level 3
 * (Chromium, Firefox and Safari all follow it), so `connect-src 'self'`
 * lets the page open `/ws` and `/events` and nothing else.
 */
export const CONTENT_SECURITY_POLICY =
  "default-src 'self'; connect-src 'self'; img-src 'self'; object-src 'none'; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

interface Asset {
  readonly body: Buffer;
  readonly contentType: string;
  readonly etag: string;
  readonly lastModified: string;
}

export class WebClientAssets {
  readonly #assets: ReadonlyMap<string, Asset>;
  /** Where the files were read from; null when no `web/` directory was found. */
  readonly directory: string | null;

  private constructor(directory: string | null, assets: ReadonlyMap<string, Asset>) {
    this.directory = directory;
    this.#assets = assets;
  }

  /**
   * Reads the page's files: from `directory`, or from the `web/` folder of
   * the package this module belongs to. Without one, serves nothing.
   */
  static load(directory: string | null = findWebDirectory()): WebClientAssets {
    const assets = new Map<string, Asset>();
    if (directory !== null) {
      for (const entry of readdirSync(directory, { withFileTypes: true })) {
        const contentType = CONTENT_TYPES[extname(entry.name)];
        if (!entry.isFile() || contentType === undefined) continue;
        const path = join(directory, entry.name);
        const body = readFileSync(path);
        const hash = createHash('sha256').update(body).digest('base64url').slice(0, 22);
        assets.set(`/${entry.name}`, {
          body,
          contentType,
          etag: `"${hash}"`,
          lastModified: statSync(path).mtime.toUTCString(),
        });
      }
      const index = assets.get('/index.html');
      // The page's address is `/`, answered directly (no redirect).
      if (index !== undefined) assets.set('/', index);
    }
    return new WebClientAssets(directory, assets);
  }

  /** The paths served, e.g. `/`, `/app.js`. */
  get paths(): string[] {
    return [...this.#assets.keys()].sort();
  }

  /**
   * Answers a request for one of the page's files and returns true, or
   * returns false without touching the response for any other path.
   * @param pathname the request's path, without its query string
   */
  serve(pathname: string, request: IncomingMessage, response: ServerResponse): boolean {
    const asset = this.#assets.get(pathname);
    if (asset === undefined) return false;
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' });
      response.end('Method not allowed: GET or HEAD.\n');
      return true;
    }
    const headers = {
      ...SECURITY_HEADERS,
      etag: asset.etag,
      'last-modified': asset.lastModified,
      // Always revalidate: a restarted server may serve another version of the page.
      'cache-control': 'no-cache',
    };
    if (isFresh(request, asset)) {
      response.writeHead(304, headers);
      response.end();
      return true;
    }
    response.writeHead(200, {
      ...headers,
      'content-type': asset.contentType,
      'content-length': asset.body.length,
    });
    response.end(request.method === 'HEAD' ? undefined : asset.body);
    return true;
  }
}

/** True when the browser's cached copy is the current one (If-None-Match wins, RFC 9110 §13.2.2). */
function isFresh(request: IncomingMessage, asset: Asset): boolean {
  const ifNoneMatch = request.headers['if-none-match'];
  if (ifNoneMatch !== undefined) {
    return ifNoneMatch
      .split(',')
      .map((tag) => tag.trim().replace(/^W\//, ''))
      .some((tag) => tag === asset.etag || tag === '*');
  }
  const ifModifiedSince = request.headers['if-modified-since'];
  if (ifModifiedSince === undefined) return false;
  const since = Date.parse(ifModifiedSince);
  return !Number.isNaN(since) && Date.parse(asset.lastModified) <= since;
}

/**
 * The `web/` folder next to the package.json above this module: the module
 * runs as `src/server/http/` (sources) or `dist/src/server/http/` (built),
 * so the folder is found by walking up rather than by a fixed `../..`.
 */
export function findWebDirectory(
  start: string = dirname(fileURLToPath(import.meta.url)),
): string | null {
  for (let directory = start; ;) {
    if (existsSync(join(directory, 'package.json'))) {
      const web = join(directory, 'web');
      return existsSync(join(web, 'index.html')) ? web : null;
    }
    const parent = dirname(directory);
    if (parent === directory) return null;
    directory = parent;
  }
}
