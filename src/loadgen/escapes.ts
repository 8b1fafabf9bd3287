/**
 * Backslash escapes for the bytes a user types on a command line or in a
 * script: `--request 'PING\r\n'`. A shell passes `\r` as two characters,
 * so the load generator interprets them itself.
 */
import { InvalidOptionError } from '../errors.js';

const BACKSLASH = 0x5c;

/** The single-letter escapes; `\xHH` is handled apart. */
const SIMPLE_ESCAPES: Readonly<Record<string, number>> = { r: 0x0d, n: 0x0a, t: 0x09, '\\': 0x5c };

/**
 * `text` as bytes, with `\r`, `\n`, `\t`, `\\` and `\xHH` interpreted; any
 * other character is encoded as UTF-8. Throws InvalidOptionError for any
 * other escape, so that a typo is reported rather than sent.
 */
export function parseEscapes(text: string): Buffer {
  if (!text.includes('\\')) return Buffer.from(text, 'utf8');
  const pieces: Buffer[] = [];
  let literalStart = 0;
  let index = 0;
  while ((index = text.indexOf('\\', index)) !== -1) {
    if (index > literalStart) pieces.push(Buffer.from(text.slice(literalStart, index), 'utf8'));
    const letter = text[index + 1];
    const simple = letter === undefined ? undefined : SIMPLE_ESCAPES[letter];
    if (simple !== undefined) {
      pieces.push(Buffer.of(simple));
      index += 2;
    } else if (letter === 'x' && /^[0-9a-fA-F]{2}$/.test(text.slice(index + 2, index + 4))) {
      pieces.push(Buffer.of(Number.parseInt(text.slice(index + 2, index + 4), 16)));
      index += 4;
    } else {
      const shown =
        letter === undefined ? '\\ at the end' : `\\${text.slice(index + 1, index + 4)}`;
      throw new InvalidOptionError(
        `bad escape (${shown}) in '${text}'; use \\r \\n \\t \\\\ or \\xHH`,
      );
    }
    literalStart = index;
  }
  if (literalStart < text.length) pieces.push(Buffer.from(text.slice(literalStart), 'utf8'));
  return Buffer.concat(pieces);
}

/**
 * The inverse, for messages and reports: printable ASCII as is, everything
 * else escaped, so that `parseEscapes(formatEscapes(bytes))` equals `bytes`.
 */
export function formatEscapes(bytes: Uint8Array): string {
  let text = '';
  for (const byte of bytes) {
    if (byte === BACKSLASH) text += '\\\\';
    else if (byte === 0x0d) text += '\\r';
    else if (byte === 0x0a) text += '\\n';
    else if (byte === 0x09) text += '\\t';
    else if (byte >= 0x20 && byte < 0x7f) text += String.fromCharCode(byte);
    else text += `\\x${byte.toString(16).padStart(2, '0')}`;
  }
  return text;
}
