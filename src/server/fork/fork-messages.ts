/** Messages between the fork-mode parent and a session child. */
import type { ServerOptions } from '../options.js';

/** Child -> parent: listening on the channel; the socket may come. */
export interface ChildReady {
  readonly type: 'helo:ready';
}

/** Parent -> child, with the client's socket as the message's handle. */
export interface ServeSession {
  readonly type: 'helo:serve';
  readonly session: string;
  readonly options: ServerOptions;
}
