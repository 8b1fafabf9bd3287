/**
 * The numbers the protocol and the command line agree on, typed once: the
 * server options, the clients, the CLI and the load generator import them
 * from here, so a default cannot drift between them (README, "Command-line
 * reference"; docs/PROTOCOL.md §1–§2).
 */

/** Where a server listens and a client connects unless told otherwise: loopback only (§1). */
export const DEFAULT_HOST = '127.0.0.1';

/** The TCP port of the protocol. */
export const DEFAULT_PORT = 7777;

/** Longest line, without its terminator, in bytes (docs/PROTOCOL.md §2). */
export const DEFAULT_MAX_LINE_BYTES = 8192;

/** The server closes a connection with `408 TOUT` after this long without a complete line. */
export const DEFAULT_IDLE_TIMEOUT_MS = 300_000;

/** How long a client (and the load generator) waits for a reply. */
export const DEFAULT_CLIENT_TIMEOUT_MS = 10_000;

/**
 * The longest delay `setTimeout` takes (2^31 − 1 ms); a larger one
 * overflows Node's 32-bit timer and fires at once.
 */
export const MAX_TIMER_MS = 2_147_483_647;
