/**
 * docs/PROTOCOL.md §8 — cross-protocol safety.
 *
 * A web page can make a visitor's browser send an HTTP request to
 * 127.0.0.1:7777; its body could hold a line beginning `DATA`, which this
 * protocol would store. A command line that looks like an HTTP request line
 * or an HTTP header therefore ends the connection without a reply. The check
 * runs only for lines that are not HELO/DATA/QUIT, so it costs the hot path
 * nothing.
 */

const METHODS = ['GET', 'POST', 'PUT', 'HEAD', 'OPTIONS', 'DELETE', 'PATCH', 'CONNECT'].map((m) =>
  Buffer.from(m, 'latin1'),
);
const HEADERS = ['HOST:', 'ORIGIN:'].map((h) => Buffer.from(h, 'latin1'));
const HTTP_SLASH = Buffer.from('HTTP/', 'latin1');

function isBlank(byte: number | undefined): boolean {
  return byte === 0x20 || byte === 0x09;
}

function isDigit(byte: number | undefined): boolean {
  return byte !== undefined && byte >= 0x30 && byte <= 0x39;
}

/** Case-insensitive: does `line[at, ...)` begin with the upper-case ASCII `word`? */
function startsWithWord(line: Buffer, at: number, end: number, word: Buffer): boolean {
  if (end - at < word.length) return false;
  for (let i = 0; i < word.length; i++) {
    const byte = line[at + i]!;
    const upper = byte >= 0x61 && byte <= 0x7a ? byte - 0x20 : byte;
    if (upper !== word[i]) return false;
  }
  return true;
}

/**
 * True when `line[start, end)` is an HTTP request line (`METHOD target
 * HTTP/<version>`) or an HTTP `Host:` / `Origin:` header.
 */
export function looksLikeHttp(line: Buffer, start: number, end: number): boolean {
  let at = start;
  while (at < end && isBlank(line[at])) at++;
  for (const header of HEADERS) if (startsWithWord(line, at, end, header)) return true;

  const method = METHODS.find(
    (word) => startsWithWord(line, at, end, word) && isBlank(line[at + word.length]),
  );
  if (method === undefined) return false;

  let last = end;
  while (last > at && isBlank(line[last - 1])) last--;
  let versionStart = last;
  while (versionStart > at && !isBlank(line[versionStart - 1])) versionStart--;
  const targetEnd = versionStart;
  const targetStart = at + method.length;
  let hasTarget = false;
  for (let i = targetStart; i < targetEnd; i++) if (!isBlank(line[i])) hasTarget = true;
  return (
    hasTarget &&
    startsWithWord(line, versionStart, last, HTTP_SLASH) &&
    // The digit must be inside the line: `line` may be a view of a larger buffer.
    versionStart + HTTP_SLASH.length < last &&
    isDigit(line[versionStart + HTTP_SLASH.length])
  );
}
