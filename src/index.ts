/**
 * helo as a library: `import { connect } from 'helo'` for the client,
 * `startServer` to embed the event-loop server (`runServer` for every
 * concurrency model), the stores, and the pure protocol core.
 */
export {
  connect,
  HeloClient,
  CLIENT_DEFAULTS,
  type ConnectOptions,
  type ClientTlsOptions,
  type RequestOptions,
  type ClientState,
  type HeloClientEvents,
} from './client/client.js';
export { parseReply, ReplyParser, type Reply } from './client/reply.js';
export { parseAddress, type HeloAddress } from './client/address.js';
export {
  connectUdp,
  UdpClient,
  UDP_CLIENT_DEFAULTS,
  type UdpConnectOptions,
  type UdpRequestOptions,
} from './client/udp-client.js';
export { startServer, HeloServer } from './server/server.js';
export type { StartServerOptions, ServerStats, RunningServer } from './server/running-server.js';
export type { RejectReason } from './server/admission.js';
export { runServer } from './server/run-server.js';
export {
  DEFAULTS as SERVER_DEFAULTS,
  SERVER_MODES,
  type ServerMode,
  type ServerOptions,
} from './server/options.js';
export type { NewRecord, StoredRecord, Store } from './store/store.js';
export { SqliteStore, type SqliteStoreOptions, type CommitInfo } from './store/sqlite-store.js';
export { MemoryStore } from './store/memory-store.js';
export { openStore, parseStoreUrl, DEFAULT_STORE_URL } from './store/open-store.js';
export * from './core/index.js';
export * from './errors.js';
