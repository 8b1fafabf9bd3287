/**
 * Cuts text to a budget of UTF-8 bytes, for metadata that is stored with
 * every payload (docs/SECURITY.md: a client certificate subject is stored up
 * to 1 KiB). Pure: no I/O.
 */

/** What marks a string as cut. */
export const ELLIPSIS = '…';

const ELLIPSIS_BYTES = Buffer.byteLength(ELLIPSIS);

/**
 * `text` unchanged when its UTF-8 form fits in `maxBytes`; otherwise its
 * longest prefix of whole code points that fits together with `…`.
 * A character is never cut in half (a surrogate pair stays whole), so the
 * result is valid UTF-8 and a prefix of `text` plus the ellipsis.
 */
export function truncateUtf8(text: string, maxBytes: number): string {
  // Fast path: UTF-8 never takes more than 3 bytes per UTF-16 unit.
  if (text.length * 3 <= maxBytes || Buffer.byteLength(text) <= maxBytes) return text;
  const budget = maxBytes - ELLIPSIS_BYTES;
  if (budget < 0) return '';
  let bytes = 0;
  let end = 0;
  // for…of walks code points: a pair is one step, a lone surrogate is one too.
  for (const char of text) {
    const size = utf8Size(char.codePointAt(0)!);
    if (bytes + size > budget) break;
    bytes += size;
    end += char.length;
  }
  return text.slice(0, end) + ELLIPSIS;
}

/** UTF-8 length of one code point; a lone surrogate is written as U+FFFD (3 bytes). */
function utf8Size(codePoint: number): number {
  if (codePoint < 0x80) return 1;
  if (codePoint < 0x800) return 2;
  if (codePoint < 0x10000) return 3;
  return 4;
}
