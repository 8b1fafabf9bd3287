/**
 * Socket activation (systemd, `systemd-socket-activate`; docs/TRANSPORTS.md,
 * "Socket activation and inetd mode"): the listening sockets are made by the
 * service manager and passed from descriptor 3 on, described by
 * `LISTEN_PID` (the process they are meant for), `LISTEN_FDS` (how many) and
 * `LISTEN_FDNAMES` (colon-separated names). The manager keeps its copy of
 * each socket, so while the server restarts the kernel holds new clients in
 * the socket's accept queue: no client is refused.
 *
 * The variables are removed from the environment whoever they were meant
 * for: a child process (a fork-mode session, a cluster worker, a store
 * helper) must never take them as its own.
 */
import { InvalidOptionError } from '../../errors.js';

/** What each passed socket serves, named as in `LISTEN_FDNAMES`. */
const ACTIVATION_NAMES = ['tcp', 'tls', 'unix', 'http', 'udp'] as const;
export type ActivationName = (typeof ACTIVATION_NAMES)[number];

/** The descriptor passed for each listener; a listener absent here binds as its flags say. */
export type ListenFds = Readonly<Partial<Record<ActivationName, number>>>;

/** The first passed descriptor (sd_listen_fds(3): SD_LISTEN_FDS_START). */
const FIRST_FD = 3;

/** The names systemd gives a socket whose unit names none (FileDescriptorName= unset). */
const UNNAMED = new Set(['', 'unknown', 'stored', 'connection']);

/**
 * Reads the activation variables and removes them from `env`. Returns null
 * when no sockets were passed to this process (`LISTEN_PID` absent or
 * another process's). Throws an `InvalidOptionError` naming the problem
 * when they were passed but cannot be used.
 */
export function takeListenFds(
  env: NodeJS.ProcessEnv = process.env,
  pid: number = process.pid,
): ListenFds | null {
  const { LISTEN_PID: listenPid, LISTEN_FDS: count, LISTEN_FDNAMES: names } = env;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;
  if (listenPid === undefined || listenPid.trim() !== String(pid)) return null;
  if (count === undefined || !/^[1-9][0-9]{0,3}$/.test(count.trim())) {
    throw new InvalidOptionError(
      `LISTEN_FDS must be the number of sockets passed, got '${count ?? ''}'`,
    );
  }
  const given = names === undefined ? [] : names.split(':');
  const fds: Partial<Record<ActivationName, number>> = {};
  for (let index = 0; index < Number(count); index++) {
    const fd = FIRST_FD + index;
    const raw = given[index] ?? '';
    // A stream socket named `tcp`, or the first unnamed one, serves the protocol.
    const name = UNNAMED.has(raw) && fds.tcp === undefined ? 'tcp' : raw;
    if (!(ACTIVATION_NAMES as readonly string[]).includes(name)) {
      throw new InvalidOptionError(
        `LISTEN_FDNAMES: socket ${index + 1} (fd ${fd}) is named '${raw}'; ` +
          `name each one ${ACTIVATION_NAMES.join(', ')}`,
      );
    }
    if (fds[name as ActivationName] !== undefined) {
      throw new InvalidOptionError(`LISTEN_FDNAMES: two sockets are named '${name}'`);
    }
    fds[name as ActivationName] = fd;
  }
  return fds;
}
