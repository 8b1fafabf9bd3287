/**
 * Every exception helo throws.
 *
 * Protocol outcomes (`400 BCMD`, `401 LONG`, `500 FAIL`, ...) are *replies*,
 * values that the core returns; they are never thrown on the server. These
 * classes are for misuse, bad configuration and broken connections. Each has
 * a stable `code` (documented in docs/ERRORS.md, kept in step by a test) so
 * programs can branch on it without parsing messages.
 */

export const ERROR_CODES = {
  HELO_ERR_INVALID_OPTION: 'an option has a value helo cannot use',
  HELO_ERR_INVALID_ARGUMENT: 'a call got an argument it cannot send (e.g. a payload with LF)',
  HELO_ERR_CONNECT: 'the client could not connect to the server',
  HELO_ERR_TIMEOUT: 'no reply arrived within the timeout',
  HELO_ERR_ABORTED: 'the caller aborted the request with its AbortSignal',
  HELO_ERR_CLOSED: 'the connection closed before the reply arrived',
  HELO_ERR_REPLY: 'the server answered with a reply other than the one expected',
  HELO_ERR_STORE: 'the store could not be opened, read or written',
  HELO_ERR_LISTEN: 'the server could not listen on its address',
  HELO_ERR_PROCESS: 'a process or thread helo runs could not start, failed or did not answer',
  HELO_ERR_OUTPUT: 'a command could not write its output',
} as const;

export type HeloErrorCode = keyof typeof ERROR_CODES;

export class HeloError extends Error {
  readonly code: HeloErrorCode;

  constructor(code: HeloErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'HeloError';
    this.code = code;
  }
}

/** A flag, environment variable or constructor option has an unusable value. */
export class InvalidOptionError extends HeloError {
  constructor(message: string) {
    super('HELO_ERR_INVALID_OPTION', message);
    this.name = 'InvalidOptionError';
  }
}

/** A client call got an argument the protocol cannot carry. */
export class InvalidArgumentError extends HeloError {
  constructor(message: string) {
    super('HELO_ERR_INVALID_ARGUMENT', message);
    this.name = 'InvalidArgumentError';
  }
}

/** The client could not reach the server (refused, no such socket, DNS...). */
export class ConnectError extends HeloError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('HELO_ERR_CONNECT', message, options);
    this.name = 'ConnectError';
  }
}

export class TimeoutError extends HeloError {
  constructor(message: string) {
    super('HELO_ERR_TIMEOUT', message);
    this.name = 'TimeoutError';
  }
}

export class AbortError extends HeloError {
  constructor(message = 'the request was aborted', options?: { cause?: unknown }) {
    super('HELO_ERR_ABORTED', message, options);
    this.name = 'AbortError';
  }
}

/** The connection ended (by the server, the network or `close()`) first. */
export class ClosedError extends HeloError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('HELO_ERR_CLOSED', message, options);
    this.name = 'ClosedError';
  }
}

/**
 * The server answered, but not with the reply the call expects (for example
 * `500 FAIL` to a DATA). The reply itself travels with the error.
 */
export class ReplyError extends HeloError {
  readonly reply: { readonly code: number; readonly token: string; readonly line: string };

  constructor(
    reply: { code: number; token: string; line: string },
    expected: string,
    message = `expected ${expected}, server replied ${reply.line}`,
  ) {
    super('HELO_ERR_REPLY', message);
    this.name = 'ReplyError';
    this.reply = reply;
  }
}

export class StoreError extends HeloError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('HELO_ERR_STORE', message, options);
    this.name = 'StoreError';
  }
}

export class ListenError extends HeloError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('HELO_ERR_LISTEN', message, options);
    this.name = 'ListenError';
  }
}

/**
 * A process or thread that helo runs itself (a cluster primary or worker, a
 * fork child, a load thread, the baseline server of `--ceiling`) could not
 * start, was started the wrong way, ended early or did not answer.
 */
export class ProcessError extends HeloError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('HELO_ERR_PROCESS', message, options);
    this.name = 'ProcessError';
  }
}

/** A command could not write its output (stdout failed, other than a closed pipe). */
export class OutputError extends HeloError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('HELO_ERR_OUTPUT', message, options);
    this.name = 'OutputError';
  }
}
