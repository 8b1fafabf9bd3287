/**
 * The reply table: the one source of truth for every reply helo sends
 * (docs/PROTOCOL.md §3 core replies, §4 extension replies). Each reply is kept as
 * ready-made bytes so the hot path never formats a string.
 */

export interface ReplyInfo {
  /** The 3-digit code. */
  readonly code: number;
  /** The token after the code, as on the wire (`OK`, `DRCV`, ...). */
  readonly token: string;
  /** The whole reply line, CRLF included, as sent. */
  readonly bytes: Buffer;
  /** Whether the server closes the connection after sending it. */
  readonly closes: boolean;
  /** One line saying when it is sent. */
  readonly meaning: string;
}

function reply(code: number, token: string, closes: boolean, meaning: string): ReplyInfo {
  return Object.freeze({
    code,
    token,
    bytes: Buffer.from(`${code} ${token}\r\n`, 'latin1'),
    closes,
    meaning,
  });
}

export const Replies = Object.freeze({
  // docs/PROTOCOL.md §3 — core
  OK: reply(100, 'OK', false, 'HELO: greeting; the optional name labels the session'),
  BYE: reply(200, 'BYE', true, 'QUIT: the server flushes the reply, then closes'),
  DRCV: reply(300, 'DRCV', false, 'DATA: the payload is stored'),
  BCMD: reply(400, 'BCMD', false, 'anything else, including an empty line'),
  // docs/PROTOCOL.md §4 — extensions
  LONG: reply(401, 'LONG', false, 'a line (command or payload) longer than the limit'),
  TOUT: reply(408, 'TOUT', true, 'no complete line for the idle timeout'),
  FAIL: reply(500, 'FAIL', false, 'the payload could not be stored: it was NOT received, retry'),
  BUSY: reply(503, 'BUSY', true, 'connection limit reached, or server shutting down'),
});

export type ReplyName = keyof typeof Replies;

/** Every reply, in code order. */
export const ALL_REPLIES: readonly ReplyInfo[] = Object.values(Replies).sort(
  (a, b) => a.code - b.code,
);
