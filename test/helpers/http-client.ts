/**
 * Plain HTTP and WebSocket-upgrade requests to a server's HTTP port, for
 * tests that check status codes and headers (node:http, no fetch caching).
 */
import http from 'node:http';
import { WebSocket } from 'ws';

export interface HttpAnswer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

export function httpRequest(
  port: number,
  path: string,
  options: { readonly method?: string; readonly headers?: http.OutgoingHttpHeaders } = {},
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      { host: '127.0.0.1', port, path, method: options.method ?? 'GET', headers: options.headers },
      (response) => {
        let body = '';
        response.setEncoding('utf8').on('data', (text: string) => (body += text));
        response.on('end', () =>
          resolve({ status: response.statusCode ?? 0, headers: response.headers, body }),
        );
      },
    );
    request.on('error', reject);
    request.end();
  });
}

/** The HTTP status of a refused WebSocket upgrade, or 'open' when it succeeds. */
export function upgradeStatus(url: string, origin?: string): Promise<number | 'open'> {
  const ws = new WebSocket(url, origin === undefined ? {} : { origin });
  return new Promise((resolve) => {
    ws.once('open', () => {
      ws.close();
      resolve('open');
    });
    ws.once('unexpected-response', (_request, response) => {
      resolve(response.statusCode ?? 0);
      ws.terminate();
    });
    ws.on('error', () => undefined);
  });
}
