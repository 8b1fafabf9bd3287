/**
 * `npm run fuzz`: the properties of support/fuzz-properties.ts (the ones
 * `npm test` runs up to a few thousand times each), run for as long as you like.
 *
 * Every run is replayable: the seed is printed at the start (or given with
 * --seed), each batch of runs gets a seed derived from it, and a failure
 * prints the exact command that replays its counterexample.
 *
 * Usage: npm run fuzz -- [--runs N] [--minutes M] [--seed S]
 *          [--property NAME]... [--http] [--path P]
 *   --runs N       runs in all, shared among the properties by weight (default 200000)
 *   --minutes M    instead of --runs: keep going until M minutes are up
 *   --seed S       the seed of the whole run (default: random, printed)
 *   --property P   only this property (repeatable)
 *   --http         instead: random requests to the HTTP port of a live
 *                  `helo server` process (test/server/http-fuzz-property.ts),
 *                  which must stay alive and serving (default --runs 20000)
 *   --path P       with --seed and one --property: replay the one failing case
 *                  that a failure printed
 *
 * Exit status: 0 all held, 1 a property failed, 2 bad flags.
 */
import { randomInt } from 'node:crypto';
import { parseArgs } from 'node:util';
import fc from 'fast-check';
import { FUZZ_PROPERTIES, failureReport, type FuzzProperty } from '../support/fuzz-properties.js';
import { httpFuzzProperty } from '../support/http-fuzz-property.js';

const DEFAULT_RUNS = 200_000;
/** Each HTTP case is a few round trips to a live server: about 250 a second. */
const DEFAULT_HTTP_RUNS = 20_000;
/**
 * fast-check seeds are 32-bit integers. Ours are drawn non-negative; a
 * negative one (from `npm test`) is given as `--seed=-123`.
 */
const SEED_LIMIT = 2 ** 31;
/** A batch aims at this long, so that progress lines come regularly. */
const BATCH_SECONDS = 5;
/** With --minutes, a round (runs shared by weight, as with --runs) aims at this long. */
const ROUND_SECONDS = 60;

interface Settings {
  readonly runs: number;
  readonly minutes: number | null;
  readonly seed: number;
  readonly properties: readonly FuzzProperty[];
  readonly path: string | null;
  /** Stops what the properties started (the server of --http). */
  readonly stop: () => Promise<void>;
}

class UsageError extends Error {}

function parseSettings(argv: readonly string[]): Settings {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      runs: { type: 'string' },
      minutes: { type: 'string' },
      seed: { type: 'string' },
      property: { type: 'string', multiple: true },
      path: { type: 'string' },
      http: { type: 'boolean' },
    },
  });
  if (values.http === true && values.property !== undefined) {
    throw new UsageError('give --http or --property, not both');
  }
  const defaultRuns = values.http === true ? DEFAULT_HTTP_RUNS : DEFAULT_RUNS;
  const runs = values.runs === undefined ? defaultRuns : Number(values.runs);
  if (!Number.isSafeInteger(runs) || runs < 1) {
    throw new UsageError(`--runs must be a positive integer, got '${values.runs}'`);
  }
  const minutes = values.minutes === undefined ? null : Number(values.minutes);
  if (minutes !== null && !(minutes > 0)) {
    throw new UsageError(`--minutes must be a positive number, got '${values.minutes}'`);
  }
  if (minutes !== null && values.runs !== undefined) {
    throw new UsageError('give --runs or --minutes, not both');
  }
  const seed = values.seed === undefined ? randomInt(SEED_LIMIT) : Number(values.seed);
  if (!Number.isInteger(seed) || seed < -SEED_LIMIT || seed >= SEED_LIMIT) {
    throw new UsageError(`--seed must be a 32-bit integer, got '${values.seed}'`);
  }
  const http = values.http === true ? httpFuzzProperty() : null;
  const names = values.property ?? FUZZ_PROPERTIES.map((property) => property.name);
  const properties =
    http !== null
      ? [http]
      : names.map((name) => {
          const property = FUZZ_PROPERTIES.find((candidate) => candidate.name === name);
          if (property === undefined) {
            const known = FUZZ_PROPERTIES.map((candidate) => candidate.name).join(', ');
            throw new UsageError(`unknown --property '${name}' (known: ${known})`);
          }
          return property;
        });
  const path = values.path ?? null;
  if (path !== null) {
    if (!/^\d+(:\d+)*$/.test(path)) throw new UsageError(`--path looks like 12:0:3, got '${path}'`);
    if (values.seed === undefined || properties.length !== 1) {
      throw new UsageError(
        '--path needs the --seed and the one --property (or --http) printed with it',
      );
    }
  }
  return { runs, minutes, seed, properties, path, stop: () => http?.stop() ?? Promise.resolve() };
}

/** A batch's own seed: replaying a failure needs only this and the path. */
function batchSeed(seed: number, property: FuzzProperty, batch: number): number {
  return fc.hash(`${seed}/${property.name}/${batch}`) % SEED_LIMIT;
}

interface Tally {
  runs: number;
  seconds: number;
  batches: number;
}

class PropertyFailed extends Error {}

/** The flag that picks this property again. */
function selector(property: FuzzProperty): string {
  return property.name === 'http' ? '--http' : `--property ${property.name}`;
}

async function runBatch(property: FuzzProperty, tally: Tally, runs: number, seed: number) {
  const started = performance.now();
  const details = await property.check({ numRuns: runs, seed });
  tally.seconds += (performance.now() - started) / 1000;
  tally.batches += 1;
  if (details.failed) {
    tally.runs += details.numRuns;
    throw new PropertyFailed(
      `\nFAILED: ${property.name} (${property.title}) after ${tally.runs} runs\n` +
        `${failureReport(details)}\n\nReplay this case: npm run fuzz -- ${selector(property)} ` +
        `--seed=${details.seed} --path ${details.counterexamplePath}`,
    );
  }
  tally.runs += runs;
}

function rate(tally: Tally): number {
  return tally.seconds > 0 ? tally.runs / tally.seconds : 0;
}

/**
 * Runs that should take about `seconds` at the rate so far. The first batch
 * is one run, to measure; then at most ten times the runs so far, as a few
 * runs say little about the rate (inputs vary in size).
 */
function runsFor(tally: Tally, seconds: number): number {
  if (tally.batches === 0) return 1;
  return Math.max(1, Math.min(10 * tally.runs, Math.round(rate(tally) * seconds)));
}

function progress(property: FuzzProperty, tally: Tally, target: number | null): void {
  const of = target === null ? '' : ` of ${target.toLocaleString('en')}`;
  console.log(
    `  ${property.name.padEnd(16)} ${tally.runs.toLocaleString('en').padStart(10)}${of} runs` +
      `  ${Math.round(rate(tally)).toLocaleString('en').padStart(7)} runs/s`,
  );
}

/** One batch of at most `maxRuns` runs, sized to take about BATCH_SECONDS. */
async function runNextBatch(
  settings: Settings,
  property: FuzzProperty,
  tally: Tally,
  maxRuns: number,
): Promise<void> {
  const runs = Math.min(maxRuns, runsFor(tally, BATCH_SECONDS));
  await runBatch(property, tally, runs, batchSeed(settings.seed, property, tally.batches));
}

/** --runs: each property its share of the runs by weight, one after the other. */
async function runCounted(settings: Settings, tallies: Map<FuzzProperty, Tally>): Promise<void> {
  const totalWeight = settings.properties.reduce((sum, property) => sum + property.weight, 0);
  for (const property of settings.properties) {
    const tally = tallies.get(property)!;
    const target = Math.max(1, Math.round((settings.runs * property.weight) / totalWeight));
    while (tally.runs < target) {
      await runNextBatch(settings, property, tally, target - tally.runs);
      progress(property, tally, target);
    }
  }
}

/**
 * --minutes: rounds in which the runs are shared by weight as with --runs,
 * each round sized to take about ROUND_SECONDS, until time is up.
 */
async function runTimed(settings: Settings, tallies: Map<FuzzProperty, Tally>): Promise<void> {
  const deadline = performance.now() + settings.minutes! * 60_000;
  // The first round is short: it measures how many runs a round can hold.
  let runsPerWeight = 10;
  while (performance.now() < deadline) {
    const roundStarted = performance.now();
    for (const property of settings.properties) {
      const tally = tallies.get(property)!;
      const target = tally.runs + Math.max(1, Math.round(runsPerWeight * property.weight));
      while (tally.runs < target && performance.now() < deadline) {
        await runNextBatch(settings, property, tally, target - tally.runs);
      }
      progress(property, tally, null);
    }
    const roundSeconds = (performance.now() - roundStarted) / 1000;
    runsPerWeight *= Math.min(10, ROUND_SECONDS / Math.max(roundSeconds, 0.001));
  }
}

async function replay(settings: Settings): Promise<boolean> {
  const property = settings.properties[0]!;
  console.log(`fuzz: replaying ${property.name} --seed=${settings.seed} --path ${settings.path}`);
  const details = await property.check({ seed: settings.seed, path: settings.path!, numRuns: 1 });
  if (!details.failed) {
    console.log('the case holds now');
    return true;
  }
  console.log(failureReport(details));
  return false;
}

function summary(tallies: Map<FuzzProperty, Tally>, seconds: number): void {
  console.log('\nproperty          runs         seconds   runs/s');
  let runs = 0;
  for (const [property, tally] of tallies) {
    runs += tally.runs;
    console.log(
      `${property.name.padEnd(16)} ${tally.runs.toLocaleString('en').padStart(10)}` +
        `  ${tally.seconds.toFixed(1).padStart(9)}  ${Math.round(rate(tally)).toLocaleString('en').padStart(7)}`,
    );
  }
  console.log(
    `all              ${runs.toLocaleString('en').padStart(10)}  ${seconds.toFixed(1).padStart(9)}`,
  );
}

async function main(): Promise<number> {
  let settings: Settings;
  try {
    settings = parseSettings(process.argv.slice(2));
  } catch (error) {
    console.error(`fuzz: ${(error as Error).message}`);
    return 2;
  }
  try {
    return await run(settings);
  } finally {
    await settings.stop();
  }
}

async function run(settings: Settings): Promise<number> {
  if (settings.path !== null) return (await replay(settings)) ? 0 : 1;

  const names = settings.properties.map((property) => property.name);
  const amount =
    settings.minutes === null ? `--runs ${settings.runs}` : `--minutes ${settings.minutes}`;
  const only =
    names.length === FUZZ_PROPERTIES.length
      ? ''
      : settings.properties.map((property) => ` ${selector(property)}`).join('');
  console.log(
    `fuzz: seed ${settings.seed} (run all this again: npm run fuzz -- --seed=${settings.seed} ${amount}${only})`,
  );

  const tallies = new Map(
    settings.properties.map((property) => [property, { runs: 0, seconds: 0, batches: 0 }]),
  );
  const started = performance.now();
  try {
    if (settings.minutes === null) await runCounted(settings, tallies);
    else await runTimed(settings, tallies);
  } catch (error) {
    if (!(error instanceof PropertyFailed)) throw error;
    console.log(error.message);
    summary(tallies, (performance.now() - started) / 1000);
    return 1;
  }
  summary(tallies, (performance.now() - started) / 1000);
  console.log('all properties held');
  return 0;
}

process.exitCode = await main();
