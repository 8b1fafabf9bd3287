/**
 * A real `helo server` with its HTTP port open, for the browser tests: the
 * HTTP port is read from the `listening on ws://HOST:PORT/ws` line the
 * server prints.
 */
import { spawnServer, type ServerProcess, type SpawnServerOptions } from './server-process.js';

export interface WebServer {
  readonly server: ServerProcess;
  /** The protocol's TCP port. */
  readonly tcpPort: number;
  readonly httpPort: number;
  /** `http://127.0.0.1:PORT`, the page's origin. */
  readonly origin: string;
}

/** The HTTP port of a server's `listening on ws://…:PORT/ws` line, or null. */
export function httpPortOf(stdout: string): number | null {
  const match = /listening on ws:\/\/[^\s]*:(\d+)\/ws/.exec(stdout);
  return match ? Number(match[1]) : null;
}

export async function spawnWebServer(
  args: string[] = ['--store', 'memory:'],
  options: SpawnServerOptions = {},
): Promise<WebServer> {
  const server = await spawnServer([...args, '--http-port', '0'], options);
  // The ws:// line follows the tcp:// one, possibly in a later chunk.
  const deadline = Date.now() + 5_000;
  let httpPort = httpPortOf(server.stdout());
  while (httpPort === null && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    httpPort = httpPortOf(server.stdout());
  }
  if (httpPort === null) {
    await server.stop();
    throw new Error(`the server printed no ws:// address; stdout: ${server.stdout()}`);
  }
  return { server, tcpPort: server.port, httpPort, origin: `http://127.0.0.1:${httpPort}` };
}
