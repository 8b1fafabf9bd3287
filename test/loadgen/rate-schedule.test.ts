/** The open-loop schedule of --rate. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { RateSchedule } from '../../src/loadgen/rate-schedule.js';

describe('RateSchedule', () => {
  it('has exactly the units whose time has come due', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 1e6, noNaN: true }),
        fc.double({ min: 0.01, max: 1000, noNaN: true }),
        fc.double({ min: -1000, max: 1e5, noNaN: true }),
        (firstAt, intervalMs, offset) => {
          const schedule = new RateSchedule(firstAt, intervalMs);
          const now = firstAt + offset;
          const due = schedule.dueBy(now);
          assert.ok(due >= 0);
          if (due > 0) assert.ok(schedule.timeOf(due - 1) <= now + 1e-6);
          assert.ok(schedule.timeOf(due) > now - 1e-6);
        },
      ),
    );
  });

  it('gives each connection its share of the rate, their starts spread over one interval', () => {
    const rate = 1000;
    const schedules = Array.from({ length: 4 }, (_, index) =>
      RateSchedule.forConnection(0, rate, index, 4),
    );
    assert.deepEqual(
      schedules.map((schedule) => schedule.intervalMs),
      [4, 4, 4, 4],
    );
    assert.deepEqual(
      schedules.map((schedule) => schedule.firstAt),
      [0, 1, 2, 3],
    );
    // One second: 1000 units in total.
    const total = schedules.reduce((sum, schedule) => sum + schedule.dueBy(999.999), 0);
    assert.equal(total, rate);
  });
});
