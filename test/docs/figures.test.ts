/**
 * `npm run figures` (scripts/figures.ts) owns every figure block of README,
 * TOUR and BENCH: each document has the blocks the script writes, each block
 * says where and on which commit it was measured, and an unknown block name
 * is refused with one line.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO_ROOT } from '../../support/server-process.js';

const FIGURES = join(REPO_ROOT, 'dist', 'scripts', 'figures.js');

function figures(...args: string[]): ReturnType<typeof spawnSync> {
  return spawnSync(process.execPath, [FIGURES, ...args], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    timeout: 30_000,
  });
}

describe('npm run figures', () => {
  it('finds every block in place, each with its machine and commit', () => {
    const check = figures('--check');
    assert.equal(check.stderr, '');
    assert.equal(check.status, 0);
  });

  it('lists the blocks and the documents that hold them', () => {
    const list = figures('--list');
    assert.equal(list.status, 0);
    for (const id of [
      'readme-bench',
      'bench-report',
      'tour-fork-cost',
      'tour-models',
      'tour-durable',
    ]) {
      assert.match(String(list.stdout), new RegExp(`^${id} `, 'm'));
    }
  });

  it('refuses a block it does not know, in one line', () => {
    const run = figures('--only', 'nonsense');
    assert.equal(run.status, 2);
    assert.equal(run.stderr, 'figures: no block named nonsense (npm run figures -- --list)\n');
  });
});
