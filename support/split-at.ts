/** Cutting byte strings into pieces, for tests and fuzzing of framing. */

/** Splits `data` at the given cut points (any numbers; reduced modulo length). */
export function splitAt(data: Buffer, cuts: readonly number[]): Buffer[] {
  if (data.length === 0) return [data];
  const points = [...new Set(cuts.map((cut) => cut % (data.length + 1)))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let from = 0;
  for (const point of points) {
    if (point > from) pieces.push(data.subarray(from, point));
    from = Math.max(from, point);
  }
  if (from < data.length) pieces.push(data.subarray(from));
  return pieces;
}
