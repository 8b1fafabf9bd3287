/**
 * protocol.md §5, repeated: SIGKILL under load, several times against one
 * growing SQLite file, loses no acknowledged payload and stores none twice.
 * The same cycles as `npm run kill-cycles` (20 of them, with figures in
 * docs/FAULTS.md), fewer of them here to stay quick.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  KILL_CYCLE_DEFAULTS,
  runKillCycles,
  type KillCyclesReport,
  type KillMode,
} from '../../support/kill-cycles-lib.js';

function assertNothingLost(report: KillCyclesReport, seed: number): void {
  for (const cycle of report.cycles) {
    const where = `seed ${seed}, cycle ${cycle.cycle} (killed after ${cycle.killAfterMs} ms)`;
    assert.ok(cycle.acknowledged > 0, `${where}: nothing was acknowledged, so nothing was tested`);
    assert.equal(cycle.lost, 0, `${where}: acknowledged payloads missing from the file`);
    assert.equal(cycle.duplicated, 0, `${where}: payloads stored twice`);
    assert.equal(cycle.failed, 0, `${where}: 500 FAIL with nothing wrong with the disk`);
    assert.equal(cycle.unexpected, 0, `${where}: replies other than 300 DRCV / 500 FAIL`);
    assert.ok(cycle.stored >= cycle.acknowledged, `${where}: fewer stored than acknowledged`);
  }
  assert.ok(report.ok);
}

describe('SIGKILL cycles on one growing database', () => {
  const dir = mkdtempSync(join(tmpdir(), 'helo-kill-cycles-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** Runs the cycles and checks them; a failure names the seed that repeats its kill times. */
  async function killAndCheck(mode: KillMode, cycles: number): Promise<void> {
    const seed = Date.now() % 1e9;
    const report = await runKillCycles({
      ...KILL_CYCLE_DEFAULTS,
      file: join(dir, `${mode}.db`),
      mode,
      cycles,
      // Shorter than the script's 300–1500 ms: enough load to kill mid-commit.
      minKillMs: 200,
      maxKillMs: 600,
      seed,
    });
    assertNothingLost(report, seed);
  }

  it('event-loop mode: 3 kills, every acknowledged payload stored exactly once', async () => {
    await killAndCheck('event-loop', 3);
  });

  it('cluster mode (the whole process group killed): 2 kills, the same', async () => {
    await killAndCheck('cluster', 2);
  });
});
