/**
 * npm run demo:cluster: on loopback, a private PostgreSQL (support/postgres.ts),
 * three `helo server --proxy-protocol` sharing it, and HAProxy in front of
 * them with deploy/haproxy/haproxy.cfg; prints where to connect, and stops
 * and removes everything on Ctrl-C or SIGTERM (docs/DEPLOY.md, "Behind a
 * load balancer").
 */
import { freePort, startPostgres, type PostgresCluster } from '../support/postgres.js';
import {
  backendName,
  haproxyPath,
  startBackendServer,
  startHaproxy,
  type BackendServer,
  type Haproxy,
} from '../support/haproxy.js';

const SERVERS = 3;

let cluster: PostgresCluster | undefined;
const servers: BackendServer[] = [];
let haproxy: Haproxy | undefined;
let stopping = false;

async function stopAll(): Promise<void> {
  await haproxy?.stop();
  await Promise.all(servers.map((server) => server.stop('SIGTERM')));
  await cluster?.destroy();
}

async function main(): Promise<void> {
  if (haproxyPath() === null) {
    console.error('haproxy is not installed: sudo apt-get install haproxy');
    process.exit(1);
  }
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (stopping) return;
      stopping = true;
      console.log('\nstopping HAProxy, the helo servers and PostgreSQL…');
      stopAll().then(
        () => process.exit(0),
        (error: unknown) => {
          console.error(error);
          process.exit(1);
        },
      );
    });
  }
  console.log('starting a private PostgreSQL…');
  cluster = await startPostgres();
  const store = await cluster.createDatabase('helo');
  for (let index = 0; index < SERVERS && !stopping; index += 1) {
    servers.push(await startBackendServer({ store }));
  }
  // The demo's port is fixed when free, so the printed command is the same each time.
  const port = (await isFree(7777)) ? 7777 : await freePort();
  haproxy = await startHaproxy(servers, { port });
  await haproxy.waitUntilUp();
  if (stopping) return;
  const helo = 'node bin/helo';
  console.log(`
Three helo servers behind HAProxy, sharing one PostgreSQL database:

  ${servers.map((server, index) => `${backendName(index)}: tcp://127.0.0.1:${server.port}  http://127.0.0.1:${server.httpPort}/`).join('\n  ')}
  PostgreSQL: ${store}

Connect through HAProxy (each connection goes to the server with the fewest):

  ${helo} client --port ${haproxy.port}
  printf 'HELO\\nDATA\\nHello\\nQUIT\\n' | ${helo} client --port ${haproxy.port}

HAProxy's statistics page: http://127.0.0.1:${haproxy.statsPort}/
The stored records: a table, then JSON with peer (your client) and proxy (HAProxy):

  ${helo} store list --store ${store}
  ${helo} store export --store ${store}

Try \`kill -TERM ${servers[0]!.process.child.pid}\` (${backendName(0)}) and watch the page.
Ctrl-C stops everything and removes the database.`);
}

async function isFree(port: number): Promise<boolean> {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

main().catch(async (error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  await stopAll().catch(() => {});
  process.exit(1);
});
