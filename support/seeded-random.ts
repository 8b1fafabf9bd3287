/**
 * mulberry32: a small seeded random generator, so that a seed repeats a run
 * exactly (the drops of a lossy relay, the kill times of `npm run
 * kill-cycles`, the bytes of a fuzzed megabyte stream).
 */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}
