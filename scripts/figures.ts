/**
 * `npm run figures`: re-measures every figure that README.md, docs/TOUR.md,
 * docs/BENCH.md and their Spanish twins quote, on the current code, in one
 * run, and writes each between its markers
 *
 *   <!-- figures:ID -->
 *   …generated: a table or a trimmed `helo bench` transcript…
 *   <!-- /figures:ID -->
 *
 * with the machine (CPU model, cores), Node.js version and commit beside it,
 * so every document quotes the same run and says where it came from.
 * docs/benchmarks.md is written by `npm run bench:modes` and
 * `npm run bench:memory`; `--all` runs those too.
 *
 * Usage (after npm run build):
 *   npm run figures                      every block, about two minutes
 *   npm run figures -- --only tour-pipeline,tour-durable
 *   npm run figures -- --list            the blocks and where they are
 *   npm run figures -- --check           exit 1 if a block is missing or has no machine line
 *   npm run figures -- --all             also bench:modes and bench:memory (many minutes)
 *
 * The figures are what a reader of the tour would see, so the commands run as
 * the documents give them (not pinned to CPUs): on a 2-core machine the load
 * generator and the server share the cores, which the documents say.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { processTree, treeRss } from '../bench/process-tree-rss.js';
import { HELO_BIN, REPO_ROOT, spawnServer } from '../support/server-process.js';

type Lang = 'en' | 'es';

interface BenchResult {
  readonly requestsPerSecond: number;
  readonly sessionsPerSecond: number | null;
  readonly latencyUs: { readonly p50: number; readonly p99: number } | null;
  readonly sessionLatencyUs: { readonly p50: number } | null;
}

interface Figure {
  readonly id: string;
  /** Documents holding this block, by language. */
  readonly docs: Readonly<Record<Lang, readonly string[]>>;
  readonly title: string;
  /** Measures, then renders the block's body for each language. */
  measure(): Promise<(lang: Lang) => string>;
}

const MARK_START = (id: string): string => `<!-- figures:${id} -->`;
const MARK_END = (id: string): string => `<!-- /figures:${id} -->`;

const DURATION = ['--duration', '5'];

/** Thousands with commas, as `helo bench` prints them (docs/TOUR.es.md says so too). */
function count(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

function ms(us: number): string {
  return `${(us / 1000).toFixed(3)} ms`;
}

/** Runs `helo bench …args --json` against a port and returns its result. */
function benchJson(port: number, args: readonly string[]): BenchResult {
  const out = execFileSync(
    process.execPath,
    [HELO_BIN, 'bench', '--port', String(port), ...args, '--json'],
    {
      encoding: 'utf8',
      maxBuffer: 16 * 1024 * 1024,
    },
  );
  return (JSON.parse(out) as { result: BenchResult }).result;
}

/** Runs `helo bench …args` and returns its text report. */
function benchText(port: number, args: readonly string[]): string {
  return execFileSync(process.execPath, [HELO_BIN, 'bench', '--port', String(port), ...args], {
    encoding: 'utf8',
  });
}

/** Starts `helo server --store memory: --log-level warn …args`, runs `use`, stops it. */
async function withServer<T>(
  args: readonly string[],
  use: (port: number) => T | Promise<T>,
): Promise<T> {
  const server = await spawnServer(['--store', 'memory:', '--log-level', 'warn', ...args]);
  try {
    return await use(server.port);
  } finally {
    await server.stop();
  }
}

/** The same report with the port a reader would see (7777) instead of an ephemeral one. */
function readerPort(text: string, port: number): string {
  return text.replaceAll(`127.0.0.1:${port}`, '127.0.0.1:7777');
}

/** Keeps the report lines starting with one of `prefixes`, eliding the rest with `…`. */
function trimReport(text: string, keep: readonly string[]): string {
  const lines = text.trimEnd().split('\n');
  const kept: string[] = [];
  for (const [index, line] of lines.entries()) {
    const wanted = index < 2 || keep.some((prefix) => line.startsWith(prefix));
    if (wanted) kept.push(line);
    else if (kept.at(-1) !== '…') kept.push('…');
  }
  return kept.join('\n');
}

function table(
  header: readonly string[],
  align: readonly ('l' | 'r')[],
  rows: readonly string[][],
): string {
  const widths = header.map((cell, column) =>
    Math.max(cell.length, ...rows.map((row) => row[column]!.length)),
  );
  const pad = (cell: string, column: number): string =>
    align[column] === 'r' ? cell.padStart(widths[column]!) : cell.padEnd(widths[column]!);
  const line = (cells: readonly string[]): string => `| ${cells.map(pad).join(' | ')} |`;
  const rule = `| ${widths.map((width, column) => (align[column] === 'r' ? `${'-'.repeat(width - 1)}:` : '-'.repeat(width))).join(' | ')} |`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}

/** Resident and proportional set size of a process tree, in MiB. */
function treeMemory(pid: number): { rss: number; pss: number } {
  let pss = 0;
  for (const member of processTree(pid)) {
    try {
      const rollup = readFileSync(`/proc/${member}/smaps_rollup`, 'utf8');
      pss += Number(/^Pss:\s+(\d+)\s+kB/m.exec(rollup)?.[1] ?? 0) * 1024;
    } catch {
      // a child that ended meanwhile
    }
  }
  return { rss: treeRss(pid) / 2 ** 20, pss: pss / 2 ** 20 };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Milliseconds from starting `helo server …args` to its listening line, median of 3. */
async function startUpMs(args: readonly string[]): Promise<number> {
  const times: number[] = [];
  for (let run = 0; run < 3; run++) {
    const started = performance.now();
    const server = await spawnServer(['--store', 'memory:', '--log-level', 'warn', ...args]);
    times.push(performance.now() - started);
    await server.stop();
  }
  return median(times);
}

/** Clients that said HELO and got their reply, held open (a fork child each). */
async function heldClients(port: number, count: number): Promise<Socket[]> {
  const sockets: Socket[] = [];
  for (let index = 0; index < count; index++) {
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => {});
    socket.write('HELO\r\n');
    await new Promise((resolve) => {
      socket.once('data', resolve);
      setTimeout(resolve, 10_000).unref();
    });
    sockets.push(socket);
  }
  return sockets;
}

/** MiB one more worker (or, in fork mode, one more connection) adds: (4 − 1) / 3, settled. */
async function memoryPerWorker(
  mode: string,
  workerFlag: string | null,
): Promise<{ rss: number; pss: number }> {
  const measure = async (workers: number): Promise<{ rss: number; pss: number }> => {
    const args = ['--store', 'memory:', '--log-level', 'warn', '--mode', mode];
    if (workerFlag !== null) args.push(workerFlag, String(workers));
    const server = await spawnServer(args);
    const clients = workerFlag === null ? await heldClients(server.port, workers) : [];
    await sleep(1000);
    const memory = treeMemory(server.child.pid!);
    for (const client of clients) client.destroy();
    await server.stop();
    return memory;
  };
  const one = await measure(1);
  const four = await measure(4);
  return { rss: (four.rss - one.rss) / 3, pss: (four.pss - one.pss) / 3 };
}

const FIGURES: readonly Figure[] = [
  {
    id: 'readme-bench',
    title: '`helo bench --duration 5` against a server with the memory store',
    docs: { en: ['README.md'], es: ['README.es.md'] },
    async measure() {
      const report = await withServer([], (port) => readerPort(benchText(port, DURATION), port));
      const body = trimReport(report, ['requests/s', 'latency p50', 'latency p99 ']);
      return () => ['```sh', '$ ./bin/helo bench --duration 5', body, '```'].join('\n');
    },
  },
  {
    id: 'bench-report',
    title: '`helo bench --duration 10 --ceiling`',
    docs: { en: ['docs/BENCH.md'], es: [] },
    async measure() {
      const shown = await withServer([], (port) =>
        readerPort(benchText(port, ['--duration', '10', '--ceiling']), port),
      );
      return () => ['```', shown.trimEnd(), '```'].join('\n');
    },
  },
  {
    id: 'tour-fork-cost',
    title: 'sessions/s, event loop vs a process per connection',
    docs: { en: ['docs/TOUR.md'], es: ['docs/TOUR.es.md'] },
    async measure() {
      const args = ['--workload', 'session', '--connections', '4', ...DURATION];
      const rows: string[][] = [];
      for (const mode of ['event-loop', 'fork']) {
        const result = await withServer(['--mode', mode], (port) => benchJson(port, args));
        rows.push([
          `\`--mode ${mode}\``,
          count(result.sessionsPerSecond ?? 0),
          ms(result.sessionLatencyUs?.p50 ?? 0),
        ]);
      }
      return (lang) =>
        table(
          lang === 'en'
            ? ['server', 'sessions/s', 'session latency p50']
            : ['servidor', 'sesiones/s', 'latencia de sesión p50'],
          ['l', 'r', 'r'],
          rows,
        );
    },
  },
  {
    id: 'tour-cpu-wait',
    title: 'CPU-bound vs waiting work, one process vs several',
    docs: { en: ['docs/TOUR.md'], es: ['docs/TOUR.es.md'] },
    async measure() {
      const models = [
        { label: '`event-loop`', args: [] as string[] },
        { label: '`cluster --workers 2`', args: ['--mode', 'cluster', '--workers', '2'] },
        { label: '`threads --threads 2`', args: ['--mode', 'threads', '--threads', '2'] },
      ];
      const works = [
        {
          en: '`--work-cpu-ms 5` (CPU)',
          es: '`--work-cpu-ms 5` (CPU)',
          args: ['--work-cpu-ms', '5'],
        },
        {
          en: '`--work-ms 5` (waiting)',
          es: '`--work-ms 5` (de espera)',
          args: ['--work-ms', '5'],
        },
      ];
      const cells: number[][] = [];
      for (const work of works) {
        const row: number[] = [];
        for (const model of models) {
          const result = await withServer([...work.args, ...model.args], (port) =>
            benchJson(port, ['--connections', '50', ...DURATION]),
          );
          row.push(result.requestsPerSecond);
        }
        cells.push(row);
      }
      return (lang) =>
        table(
          [
            lang === 'en' ? 'work per request' : 'trabajo por petición',
            ...models.map((model) => model.label),
          ],
          ['l', ...models.map(() => 'r' as const)],
          works.map((work, index) => [
            work[lang],
            ...cells[index]!.map(
              (value) => `${count(value)} ${lang === 'en' ? 'req/s' : 'peticiones/s'}`,
            ),
          ]),
        );
    },
  },
  {
    id: 'tour-models',
    title: 'threads against processes: CPU-bound requests/s, start-up, memory per worker',
    docs: { en: ['docs/TOUR.md'], es: ['docs/TOUR.es.md'] },
    async measure() {
      const models = [
        {
          label: '`event-loop`',
          mode: 'event-loop',
          flag: null as string | null,
          perConnection: false,
        },
        { label: '`threads` 2', mode: 'threads', flag: '--threads', perConnection: false },
        { label: '`cluster` 2', mode: 'cluster', flag: '--workers', perConnection: false },
        { label: '`fork`', mode: 'fork', flag: null, perConnection: true },
      ];
      const rates: string[] = [];
      const startUps: string[] = [];
      const memories: string[] = [];
      for (const model of models) {
        const sized = (workers: number): string[] =>
          model.flag === null
            ? ['--mode', model.mode]
            : ['--mode', model.mode, model.flag, String(workers)];
        const runs: number[] = [];
        for (let run = 0; run < 3; run++) {
          const result = await withServer([...sized(2), '--work-cpu-ms', '2'], (port) =>
            benchJson(port, ['--connections', '10', ...DURATION, '--threads', '1']),
          );
          runs.push(result.requestsPerSecond);
        }
        rates.push(count(median(runs)));
        const startUpTimes: string[] = [];
        for (const size of model.flag === null ? [1] : [1, 2, 4]) {
          startUpTimes.push(count(await startUpMs(sized(size))));
        }
        startUps.push(startUpTimes.join(' / '));
        if (model.mode === 'event-loop') memories.push('-');
        else {
          const memory = await memoryPerWorker(model.mode, model.perConnection ? null : model.flag);
          memories.push(`${memory.rss.toFixed(0)} / ${memory.pss.toFixed(0)}`);
        }
      }
      return (lang) =>
        table(
          [lang === 'en' ? '2 CPUs' : '2 CPU', ...models.map((model) => model.label)],
          ['l', 'r', 'r', 'r', 'r'],
          lang === 'en'
            ? [
                ['requests/s, `--work-cpu-ms 2`, 10 clients (median of 3)', ...rates],
                ['start to ready, ms (1 / 2 / 4 workers)', ...startUps],
                ['memory per extra worker (fork: per client), RSS / PSS, MiB', ...memories],
              ]
            : [
                ['peticiones/s, `--work-cpu-ms 2`, 10 clientes (mediana de 3)', ...rates],
                ['de arrancar a listo, ms (1 / 2 / 4 trabajadores)', ...startUps],
                ['memoria por trabajador extra (fork: por cliente), RSS / PSS, MiB', ...memories],
              ],
        );
    },
  },
  {
    id: 'tour-pipeline',
    title: 'one request in flight per connection, then 32',
    docs: { en: ['docs/TOUR.md'], es: ['docs/TOUR.es.md'] },
    async measure() {
      const rows: string[][] = [];
      for (const pipeline of [1, 32]) {
        const result = await withServer([], (port) =>
          benchJson(port, ['--pipeline', String(pipeline), ...DURATION]),
        );
        rows.push([
          String(pipeline),
          count(result.requestsPerSecond),
          ms(result.latencyUs?.p50 ?? 0),
          ms(result.latencyUs?.p99 ?? 0),
        ]);
      }
      return (lang) =>
        table(
          lang === 'en'
            ? ['`--pipeline`', 'requests/s', 'latency p50', 'latency p99']
            : ['`--pipeline`', 'peticiones/s', 'latencia p50', 'latencia p99'],
          ['r', 'r', 'r', 'r'],
          rows,
        );
    },
  },
  {
    id: 'tour-durable',
    title: 'durable acknowledgements, memory vs SQLite, 1 and 50 connections',
    docs: { en: ['docs/TOUR.md'], es: ['docs/TOUR.es.md'] },
    async measure() {
      const folder = mkdtempSync(join(tmpdir(), 'helo-figures-'));
      const rows: { store: string; connections: number; rate: number; p50: number }[] = [];
      try {
        for (const connections of [1, 50]) {
          for (const store of ['memory:', 'sqlite:']) {
            const storeArgs =
              store === 'memory:' ? [] : ['--store', `sqlite:${join(folder, `${connections}.db`)}`];
            const result = await withServer(storeArgs, (port) =>
              benchJson(port, [
                '--workload',
                'data',
                '--connections',
                String(connections),
                ...DURATION,
              ]),
            );
            rows.push({
              store,
              connections,
              rate: result.requestsPerSecond,
              p50: result.latencyUs?.p50 ?? 0,
            });
          }
        }
      } finally {
        rmSync(folder, { recursive: true, force: true });
      }
      return (lang) =>
        table(
          lang === 'en'
            ? ["server's store", 'connections', '`300 DRCV`/s', 'latency p50']
            : ['almacén del servidor', 'conexiones', '`300 DRCV`/s', 'latencia p50'],
          ['l', 'r', 'r', 'r'],
          rows.map((row) => [
            `\`${row.store}\``,
            String(row.connections),
            count(row.rate),
            ms(row.p50),
          ]),
        );
    },
  },
];

/** CPU model, cores, Node.js version and commit: written beside every block. */
function machineLine(lang: Lang): string {
  const model = cpus()[0]?.model.trim() ?? 'unknown CPU';
  const cores = cpus().length;
  const commit = spawnSync('git', ['rev-parse', '--short', 'HEAD'], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
  }).stdout.trim();
  const dirty = spawnSync('git', ['status', '--porcelain', '--', 'src'], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
  }).stdout;
  const version = `${commit || 'unknown'}${dirty.trim() === '' ? '' : ' + uncommitted changes in src/'}`;
  const day = new Date().toISOString().slice(0, 10);
  return lang === 'en'
    ? `<sub>Measured by \`npm run figures\` on ${model}, ${cores} cores, Node.js ${process.version}, commit ${version}, ${day}; load generator and server share the cores.</sub>`
    : `<sub>Medido con \`npm run figures\` en ${model}, ${cores} núcleos, Node.js ${process.version}, commit ${version}, ${day}; el generador de carga y el servidor comparten los núcleos.</sub>`;
}

function replaceBlock(text: string, id: string, body: string): string | null {
  const start = text.indexOf(MARK_START(id));
  const end = text.indexOf(MARK_END(id));
  if (start < 0 || end < start) return null;
  // Blank lines around the body keep Prettier (npm run lint) from rewriting the block.
  return `${text.slice(0, start)}${MARK_START(id)}\n\n${body}\n\n${text.slice(end)}`;
}

/** Every problem with the markers: missing blocks, blocks without a machine line. */
function checkBlocks(): string[] {
  const problems: string[] = [];
  for (const figure of FIGURES) {
    for (const lang of ['en', 'es'] as const) {
      for (const doc of figure.docs[lang]) {
        const text = readFileSync(join(REPO_ROOT, doc), 'utf8');
        const start = text.indexOf(MARK_START(figure.id));
        const end = text.indexOf(MARK_END(figure.id));
        if (start < 0 || end < start)
          problems.push(`${doc}: no ${MARK_START(figure.id)} … ${MARK_END(figure.id)} block`);
        else if (!/npm run figures/.test(text.slice(start, end)))
          problems.push(`${doc}: block ${figure.id} says nothing of where it was measured`);
      }
    }
  }
  return problems;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      only: { type: 'string' },
      list: { type: 'boolean', default: false },
      check: { type: 'boolean', default: false },
      all: { type: 'boolean', default: false },
    },
  });
  if (values.list) {
    for (const figure of FIGURES) {
      console.log(
        `${figure.id.padEnd(16)} ${[...figure.docs.en, ...figure.docs.es].join(', ')}: ${figure.title}`,
      );
    }
    return;
  }
  if (values.check) {
    const problems = checkBlocks();
    for (const problem of problems) console.error(problem);
    process.exitCode = problems.length === 0 ? 0 : 1;
    return;
  }
  const wanted = values.only?.split(',').map((id) => id.trim());
  const unknown = wanted?.filter((id) => !FIGURES.some((figure) => figure.id === id)) ?? [];
  if (unknown.length > 0) {
    console.error(`figures: no block named ${unknown.join(', ')} (npm run figures -- --list)`);
    process.exitCode = 2;
    return;
  }
  for (const figure of FIGURES.filter(
    (candidate) => wanted === undefined || wanted.includes(candidate.id),
  )) {
    const started = Date.now();
    process.stderr.write(`${figure.id}: ${figure.title}… `);
    const render = await figure.measure();
    for (const lang of ['en', 'es'] as const) {
      for (const doc of figure.docs[lang]) {
        const path = join(REPO_ROOT, doc);
        const updated = replaceBlock(
          readFileSync(path, 'utf8'),
          figure.id,
          `${render(lang)}\n\n${machineLine(lang)}`,
        );
        if (updated === null) throw new Error(`${doc} has no ${MARK_START(figure.id)} block`);
        writeFileSync(path, updated);
      }
    }
    process.stderr.write(`${((Date.now() - started) / 1000).toFixed(0)} s\n`);
  }
  if (values.all) {
    for (const script of ['bench:modes', 'bench:memory']) {
      const run = spawnSync('npm', ['run', script], { cwd: REPO_ROOT, stdio: 'inherit' });
      if (run.status !== 0) throw new Error(`npm run ${script} failed`);
    }
  }
}

main().catch((error: unknown) => {
  console.error(`figures: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
