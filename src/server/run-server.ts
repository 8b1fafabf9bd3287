/**
 * One entry point for every concurrency model (`--mode`): picks the server
 * class, starts it listening and returns it.
 */
import { ClusterServer } from './cluster/cluster-server.js';
import { ForkServer } from './fork/fork-server.js';
import type { RunningServer, StartServerOptions } from './running-server.js';
import { HeloServer } from './server.js';
import { ThreadsServer } from './threads/threads-server.js';

export async function runServer(options: StartServerOptions): Promise<RunningServer> {
  switch (options.mode ?? 'event-loop') {
    case 'fork': {
      const server = new ForkServer(options);
      await server.listen();
      return server;
    }
    case 'cluster': {
      const server = new ClusterServer(options);
      await server.listen();
      return server;
    }
    case 'threads': {
      const server = new ThreadsServer(options);
      await server.listen();
      return server;
    }
    default: {
      const server = new HeloServer(options);
      await server.listen();
      return server;
    }
  }
}
