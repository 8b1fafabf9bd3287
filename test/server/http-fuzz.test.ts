/**
 * The HTTP port under random requests (http-fuzz-property.ts), against one
 * live `helo server` process: after every request it must be alive and
 * serving. A failure prints its seed and path, which
 * `npm run fuzz -- --http --seed=<seed> --path <path>` replays
 * (docs/FUZZING.md).
 */
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { failureReport } from '../../support/fuzz-properties.js';
import { spawnWebServer, type WebServer } from '../../support/web-server.js';
import {
  assertServes,
  fromWebServer,
  httpSurvivesProperty,
  LIVE_SERVER_PARAMETERS,
} from '../../support/http-fuzz-property.js';

/** Runs in `npm test`: about 12 s on this machine. */
const TEST_RUNS = 3_000;

describe('the HTTP port under random requests (property)', () => {
  let web: WebServer;
  before(async () => {
    web = await spawnWebServer(['--store', 'memory:']);
  });
  after(() => web.server.stop());

  it('stays alive and keeps serving HTTP and the protocol after every request', async () => {
    const server = fromWebServer(web);
    const details = await fc.check(httpSurvivesProperty(server), {
      ...LIVE_SERVER_PARAMETERS,
      numRuns: TEST_RUNS,
    });
    if (details.failed) {
      throw new Error(
        `${failureReport(details as fc.RunDetails<unknown>)}\nReplay: npm run fuzz -- --http ` +
          `--seed=${details.seed} --path ${details.counterexamplePath}`,
      );
    }
    await assertServes(server, true);
  });
});
