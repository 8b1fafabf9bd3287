/**
 * The program a fork-mode child runs: receive one client's socket from the
 * parent, serve that one session with the same `Connection` as every other
 * mode, and exit. Payloads go to the parent's store over IPC.
 */
import type { Socket } from 'node:net';
import { SlotAdmission } from '../cluster/connection-slots.js';
import { RemoteStore } from '../ipc/remote-store.js';
import { isMessage, parentChannel } from '../ipc/messages.js';
import { createLogger, flushLogger } from '../logger.js';
import { HeloServer } from '../server.js';
import type { ChildReady, ServeSession } from './fork-messages.js';

let server: HeloServer | null = null;
const parent = parentChannel();
const store = new RemoteStore(parent);
let isExiting = false;

/**
 * Ends this process. `shutdown` is true for a stop signal: the session is
 * told `503 BUSY` like any idle session. After the session's own end there
 * is nothing left to shut down (and nothing to log about it).
 */
async function exit(shutdown: boolean): Promise<void> {
  if (isExiting) return;
  isExiting = true;
  if (shutdown) await server?.close();
  await store.close();
  if (server) flushLogger(server.logger);
  process.exit(0);
}

process.on('message', (message: unknown, handle: unknown) => {
  if (!isMessage<ServeSession>(message, 'helo:serve') || server !== null) return;
  const socket = handle as Socket;
  // Sockets made from a passed handle do not allow half-open connections;
  // a client's FIN must not cost it the replies it is owed (docs/PROTOCOL.md §2).
  socket.allowHalfOpen = true;
  socket.setNoDelay(true);
  const { options } = message;
  // docs/PROTOCOL.md §10: with --proxy-protocol this process reads the header,
  // and then asks the parent about the per-IP limit for the client it names.
  const perIp = options.proxyProtocol && options.maxConnectionsPerIp > 0;
  server = new HeloServer(
    { ...options, mode: 'event-loop', store, logger: createLogger(options.logLevel) },
    perIp ? { admission: new SlotAdmission(parent, options.maxConnectionsPerIp) } : {},
  );
  server.serveSocket(socket, { session: message.session });
  // After the session's own close handling: the session is over, so is this process.
  socket.once('close', () => void exit(false));
});

// Stop signals (to the parent, forwarded, or to the whole process group):
// the session ends gracefully, like in every other mode.
process.on('SIGTERM', () => void exit(true));
process.on('SIGINT', () => void exit(true));
// SIGHUP only reloads the TLS files, and that is the parent's business. Its
// default action would end this session when the whole process group gets
// one (`kill -HUP -PGID`, or a terminal that closes).
process.on('SIGHUP', () => {});
// The parent is gone: nobody can store payloads any more.
process.on('disconnect', () => {
  store.failAll('the server parent process is gone');
  void exit(true);
});

const ready: ChildReady = { type: 'helo:ready' };
parent.send(ready);
