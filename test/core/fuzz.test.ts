/**
 * The fuzz properties (support/fuzz-properties.ts) at `npm test` size. `npm run fuzz`
 * runs the same ones for longer; a failure here prints its seed and path,
 * which `npm run fuzz -- --property <name> --seed=<seed> --path <path>`
 * replays (docs/FUZZING.md).
 */
import { describe, it } from 'node:test';
import { FUZZ_PROPERTIES, failureReport } from '../../support/fuzz-properties.js';

describe('StreamProtocol under random input (property)', () => {
  for (const property of FUZZ_PROPERTIES) {
    it(property.title, async () => {
      const details = await property.check({ numRuns: property.testRuns });
      if (details.failed) {
        throw new Error(
          `${failureReport(details)}\nReplay: npm run fuzz -- --property ` +
            `${property.name} --seed=${details.seed} --path ${details.counterexamplePath}`,
        );
      }
    });
  }
});
