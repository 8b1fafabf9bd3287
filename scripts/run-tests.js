// Runs every compiled test file with node's test runner.
// Node 20's `--test` neither expands globs nor finds files in dist/ by itself,
// and a run that finds no test exits 0 and looks green: so list the files here
// and fail loudly when there are none.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

function findTests(dir) {
  const found = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...findTests(path));
    else if (entry.name.endsWith('.test.js')) found.push(path);
  }
  return found;
}

// Arguments name test files or folders (`dist/test/core`); none means all
// but dist/test/system and dist/test/deploy, which need programs a fresh
// machine lacks (npm run test:system, npm run test:deploy).
const only = process.argv.slice(2);
const files = (only.length > 0 ? only : ['dist/test'])
  .flatMap((path) => (path.endsWith('.test.js') ? [path] : findTests(path).sort()))
  .filter(
    (path) =>
      only.length > 0 ||
      !['system', 'deploy'].some((folder) => path.startsWith(join('dist', 'test', folder))),
  );
if (files.length === 0) {
  console.error('no test files found (did the build run?)');
  process.exit(1);
}
const result = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...files], {
  stdio: 'inherit',
});
process.exit(result.status ?? 1);
