/**
 * Preloaded into a server measured by `npm run bench:memory` (`node
 * --expose-gc --import .../heap-report-preload.js SERVER...`): on SIGUSR2
 * it runs a full garbage collection and writes `process.memoryUsage()` and
 * the sizes of V8's heap spaces as JSON to the file named by
 * BENCH_HEAP_REPORT_FILE. That splits the server's resident memory into
 * live JavaScript objects, the heap V8 keeps (young generation included),
 * and the rest (native memory: libuv handles, Node's wrappers, malloc),
 * without touching the server's own code.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { getHeapSpaceStatistics } from 'node:v8';

const file = process.env.BENCH_HEAP_REPORT_FILE;
const collect = (globalThis as { gc?: () => void }).gc;

if (file !== undefined && collect !== undefined) {
  process.on('SIGUSR2', () => {
    // Twice: the first pass may leave objects that only die in the next (weak references).
    collect();
    collect();
    // Written aside and renamed, so that the reader never sees half a file.
    const spaces = Object.fromEntries(
      getHeapSpaceStatistics().map((space) => [
        space.space_name,
        { size: space.space_size, used: space.space_used_size },
      ]),
    );
    writeFileSync(`${file}.partial`, JSON.stringify({ ...process.memoryUsage(), spaces }));
    renameSync(`${file}.partial`, file);
  });
}
