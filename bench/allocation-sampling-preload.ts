/**
 * Preloaded into a server to count what it allocates (docs/PERFORMANCE.md,
 * "bytes allocated per session"): `node --import
 * ./dist/bench/allocation-sampling-preload.js dist/src/cli/main.js server …`
 * with BENCH_ALLOCATION_FILE set. It starts V8's sampling heap profiler at
 * once, counting also the objects that collections have freed since (a
 * server's garbage is mostly short-lived), and on SIGUSR2 writes the bytes
 * allocated since the last SIGUSR2, in all and by function, largest first,
 * as JSON to that file. Divide by the sessions the load generator completed
 * in between.
 */
import { Session, type HeapProfiler } from 'node:inspector';
import { writeFileSync } from 'node:fs';

type Profile = HeapProfiler.SamplingHeapProfile;
type ProfileNode = HeapProfiler.SamplingHeapProfileNode;

const file = process.env.BENCH_ALLOCATION_FILE;
const SAMPLING = {
  samplingInterval: 256,
  includeObjectsCollectedByMajorGC: true,
  includeObjectsCollectedByMinorGC: true,
};

if (file !== undefined) {
  const session = new Session();
  session.connect();
  session.post('HeapProfiler.startSampling', SAMPLING);
  // Each report covers what was allocated since the one before (or since
  // start): send one before the load and one after it.
  process.on('SIGUSR2', () => {
    session.post('HeapProfiler.stopSampling', (error, result) => {
      if (error !== null) throw error;
      writeFileSync(file, JSON.stringify(bytesByFunction(result.profile)));
      session.post('HeapProfiler.startSampling', SAMPLING);
    });
  });
}

function bytesByFunction(profile: Profile): {
  totalBytes: number;
  byFunction: [string, number][];
} {
  const byFunction = new Map<string, number>();
  let totalBytes = 0;
  const visit = (node: ProfileNode): void => {
    const { functionName, url, lineNumber } = node.callFrame;
    const where = `${functionName || '(anonymous)'} ${url.split('/').slice(-2).join('/')}:${lineNumber}`;
    byFunction.set(where, (byFunction.get(where) ?? 0) + node.selfSize);
    totalBytes += node.selfSize;
    node.children.forEach(visit);
  };
  visit(profile.head);
  return {
    totalBytes,
    byFunction: [...byFunction].filter(([, bytes]) => bytes > 0).sort((a, b) => b[1] - a[1]),
  };
}
