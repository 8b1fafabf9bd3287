/**
 * The Spanish docs are kept in step with the English ones: for every
 * docs/X.es.md with a docs/X.md twin (and README.es.md with README.md), both
 * files have the same outline of `##`/`###` sections, the same helo and npm
 * commands in their code blocks, the same flags, the same HELO_* names and
 * metrics, and the same figures (reply codes such as `401 LONG`, numbers with
 * a unit such as `8192 bytes` or `10 s`), whatever the number format. A
 * section, a command or a figure added to the English file and not to the
 * Spanish one fails here, with what is missing on which side.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runHelo } from '../helpers/run-cli.js';

/** The compiled test runs from dist/test/docs/, three levels below the repository root. */
function repoPath(path: string): string {
  return fileURLToPath(new URL(`../../../${path}`, import.meta.url));
}

function readRepoFile(path: string): string {
  return readFileSync(repoPath(path), 'utf8');
}

interface Pair {
  readonly english: string;
  readonly spanish: string;
}

/** Every docs/X.es.md whose docs/X.md exists, and the READMEs. */
function twins(): Pair[] {
  const docs = new Set(readdirSync(repoPath('docs')));
  const pairs = [...docs]
    .filter((name) => name.endsWith('.es.md') && docs.has(name.replace(/\.es\.md$/, '.md')))
    .sort()
    .map((name) => ({
      english: `docs/${name.replace(/\.es\.md$/, '.md')}`,
      spanish: `docs/${name}`,
    }));
  return [{ english: 'README.md', spanish: 'README.es.md' }, ...pairs];
}

/**
 * The guided tour is being rewritten (transcripts checked against the program), and its
 * timings and counts are re-measured in each language on its own: its figures are left to
 * test/docs/tour-commands.test.ts; its sections, commands and names are checked here.
 */
const FIGURES_EXEMPT = new Set(['docs/TOUR.es.md']);

/** What a Spanish file says on purpose and its twin does not: a flag for Spanish readers. */
const SPANISH_ONLY: Readonly<Record<string, readonly string[]>> = {
  'docs/TOUR.es.md': ['--lang'], // the report card of `helo grade` in Spanish
};

/** The lines outside fenced code blocks, and the lines inside them. */
function split(markdown: string): { prose: string[]; code: string[] } {
  const prose: string[] = [];
  const code: string[] = [];
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (/^\s*```/.test(line)) {
      fenced = !fenced;
      continue;
    }
    (fenced ? code : prose).push(line);
  }
  return { prose, code };
}

/** `##` and `###` headings in order, as their levels: `2 2 3 3 2`. */
function outline(markdown: string): string {
  return split(markdown)
    .prose.flatMap((line) => {
      const match = /^(#{2,3}) \S/.exec(line);
      return match ? [String(match[1]!.length)] : [];
    })
    .join(' ');
}

/**
 * The commands a reader types, from the code blocks: `helo server`, `helo store list`,
 * `npm run bench:modes`, `npm start`... (flags are compared on their own, below).
 */
function commands(markdown: string): Set<string> {
  const found = new Set<string>();
  for (const line of split(markdown).code) {
    const typed = line.replace(/\s#\s.*$/, ''); // a shell comment may be translated
    for (const match of typed.matchAll(/(?:^|[\s/$(|;&])helo (store [a-z]+|[a-z]+)\b/g)) {
      found.add(`helo ${match[1]}`);
    }
    for (const match of typed.matchAll(/\bnpm (run [\w:-]+|start|test|install|ci|pack)\b/g)) {
      found.add(`npm ${match[1]}`);
    }
  }
  return found;
}

/** Every `--flag`, in code blocks and in inline code: what a reader may type. */
function flags(markdown: string): Set<string> {
  const { prose, code } = split(markdown);
  const inline = prose.join('\n').match(/`[^`\n]+`/g) ?? [];
  const text = [...code.map((line) => line.replace(/\s#\s.*$/, '')), ...inline].join('\n');
  return new Set(text.match(/(?<![\w-])--[a-z][a-z0-9-]*[a-z0-9]/g) ?? []);
}

/** Environment variables, error codes and metrics: `HELO_PORT`, `HELO_ERR_STORE`, `helo_..._total`. */
function names(markdown: string): Set<string> {
  return new Set(markdown.match(/\b(?:HELO_[A-Z][A-Z0-9_]*[A-Z0-9]|helo_[a-z0-9_]+_[a-z0-9]+)\b/g));
}

const UNITS: Record<string, string> = {
  ms: 'ms',
  millisecond: 'ms',
  milliseconds: 'ms',
  milisegundo: 'ms',
  milisegundos: 'ms',
  s: 's',
  second: 's',
  seconds: 's',
  segundo: 's',
  segundos: 's',
  minute: 'min',
  minutes: 'min',
  minuto: 'min',
  minutos: 'min',
  min: 'min',
  byte: 'bytes',
  bytes: 'bytes',
  KiB: 'KiB',
  MiB: 'MiB',
  GiB: 'GiB',
  '%': '%',
};

/**
 * Reply lines (`401 LONG`), HTTP statuses (`HTTP 403`) and numbers with a unit (`8192 bytes`,
 * `2.4 s`, `5-second`, `10 segundos`), normalized: a number keeps its digits only, so
 * `65,507`, `65 507` and `65.507` are one figure, and `2,4 s` is `2.4 s`; units are
 * canonical, so `10 seconds` and `10 segundos` are both `10 s`.
 */
function figures(markdown: string): Set<string> {
  const found = new Set<string>();
  for (const match of markdown.matchAll(
    /\b([1-5][0-9]{2}) (OK|BYE|DRCV|BCMD|LONG|TOUT|FAIL|BUSY)\b/g,
  )) {
    found.add(`${match[1]} ${match[2]}`);
  }
  for (const match of markdown.matchAll(/\bHTTP ([1-5][0-9]{2})\b/g)) found.add(`HTTP ${match[1]}`);
  const number = String.raw`(?<![\d.,])(\d{1,3}(?:[ ,.\u00a0\u202f]\d{3})+(?![\d])|\d+(?:[.,]\d+)?)`;
  const unit = String.raw`(?:\s+|-)?(ms|milli(?:second)?s?|milisegundos?|seconds?|segundos?|minutes?|minutos?|min|bytes?|KiB|MiB|GiB|s|%)(?![\p{L}\d])`;
  for (const match of markdown.matchAll(new RegExp(number + unit, 'gu'))) {
    const digits = match[1]!.replace(/[^0-9]/g, '').replace(/^0+(?=\d)/, '');
    const canonical = UNITS[match[2]!] ?? UNITS[match[2]!.toLowerCase()];
    if (canonical !== undefined) found.add(`${digits} ${canonical}`);
  }
  return found;
}

/** What one file has and the other lacks, as readable lines; empty when they agree. */
function setDrift(kind: string, english: Set<string>, spanish: Set<string>): string[] {
  const missing = [...english].filter((item) => !spanish.has(item));
  const extra = [...spanish].filter((item) => !english.has(item));
  return [
    ...(missing.length > 0 ? [`${kind} in English only: ${missing.join(', ')}`] : []),
    ...(extra.length > 0 ? [`${kind} in Spanish only: ${extra.join(', ')}`] : []),
  ];
}

/** Every difference between an English file and its Spanish twin. */
function drift(
  english: string,
  spanish: string,
  checkFigures = true,
  spanishOnly: readonly string[] = [],
): string[] {
  const problems: string[] = [];
  const [outlineEn, outlineEs] = [outline(english), outline(spanish)];
  if (outlineEn !== outlineEs) {
    problems.push(`sections (## = 2, ### = 3): English '${outlineEn}', Spanish '${outlineEs}'`);
  }
  problems.push(...setDrift('commands', commands(english), commands(spanish)));
  const allowed = (items: Set<string>): Set<string> =>
    new Set([...items].filter((item) => !spanishOnly.includes(item)));
  problems.push(...setDrift('flags', flags(english), allowed(flags(spanish))));
  problems.push(...setDrift('names', names(english), names(spanish)));
  if (checkFigures) problems.push(...setDrift('figures', figures(english), figures(spanish)));
  return problems;
}

describe('the Spanish docs against their English twins', () => {
  const pairs = twins();

  it('finds the twins, the protocol and the teaching guide among them', () => {
    const spanish = pairs.map((pair) => pair.spanish);
    for (const path of [
      'README.es.md',
      'docs/PROTOCOL.es.md',
      'docs/ERRORS.es.md',
      'docs/TRANSPORTS.es.md',
      'docs/UDP.es.md',
      'docs/WEB.es.md',
      'docs/GRADING.es.md',
      'docs/TEACHING.es.md',
      'docs/TOUR.es.md',
    ]) {
      assert.ok(spanish.includes(path), `${path} has an English twin`);
    }
  });

  for (const { english, spanish } of pairs) {
    it(`${spanish} has the sections, commands, flags, names and figures of ${english}`, () => {
      const problems = drift(
        readRepoFile(english),
        readRepoFile(spanish),
        !FIGURES_EXEMPT.has(spanish),
        SPANISH_ONLY[spanish],
      );
      assert.deepEqual(problems, [], `${spanish} has drifted from ${english}`);
    });

    it(`${english} and ${spanish} link to each other at the top`, () => {
      const head = (path: string): string => readRepoFile(path).split('\n').slice(0, 5).join('\n');
      const base = (path: string): string => path.replace(/^docs\//, '');
      assert.ok(head(english).includes(`](${base(spanish)})`), `${english} links ${spanish}`);
      assert.ok(head(spanish).includes(`](${base(english)})`), `${spanish} links ${english}`);
    });
  }

  it('README.es.md links every Spanish doc', () => {
    const readme = readRepoFile('README.es.md');
    for (const { spanish } of pairs.filter((pair) => pair.spanish.startsWith('docs/'))) {
      assert.ok(readme.includes(`](${spanish})`), `README.es.md links ${spanish}`);
    }
  });
});

describe('the drift check itself', () => {
  const english = readRepoFile('docs/PROTOCOL.md');
  const spanish = readRepoFile('docs/PROTOCOL.es.md');

  it('passes on a file and itself, and notices nothing in prose it cannot compare', () => {
    assert.deepEqual(drift(english, english), []);
  });

  it('fails when the English file gains a section', () => {
    const grown = english.replace('## See also', '## A new section\n\nText.\n\n## See also');
    assert.match(drift(grown, spanish).join('\n'), /^sections .*English '.*2 2 2'/m);
  });

  it('fails when the English file gains a subsection', () => {
    const grown = english.replace('## See also', '### A new subsection\n\nText.\n\n## See also');
    assert.match(drift(grown, spanish).join('\n'), /^sections /m);
  });

  it('fails when the English file gains a command or a flag', () => {
    const grown = `${english}\n\`\`\`sh\nhelo grade 127.0.0.1:7777 --brand-new-flag\nnpm run brand-new\n\`\`\`\n`;
    const problems = drift(grown, spanish).join('\n');
    assert.match(problems, /^commands in English only: .*helo grade.*npm run brand-new/m);
    assert.match(problems, /^flags in English only: --brand-new-flag$/m);
  });

  it('fails when a figure changes on one side only', () => {
    const changed = english.replace('at most **8192 bytes** long', 'at most **4096 bytes** long');
    const problems = drift(changed, spanish).join('\n');
    assert.match(problems, /^figures in English only: 4096 bytes$/m);
    const shrunk = spanish.replace(/\b64 KiB\b/g, '32 KiB');
    assert.match(drift(english, shrunk).join('\n'), /^figures in English only: 64 KiB$/m);
  });

  it('reads one figure in every number format and unit language', () => {
    for (const text of ['65,507 bytes', '65 507 bytes', '65\u202f507 bytes', '65.507 bytes']) {
      assert.deepEqual([...figures(text)], ['65507 bytes'], text);
    }
    assert.deepEqual([...figures('10 seconds, 2.4 s, a 5-second linger')], ['10 s', '24 s', '5 s']);
    assert.deepEqual([...figures('10 segundos, 2,4 s, 5 segundos')], ['10 s', '24 s', '5 s']);
    assert.deepEqual(
      [...figures('`401 LONG`, HTTP 403, port 7777, 3 tries')],
      ['401 LONG', 'HTTP 403'],
    );
  });

  it('ignores translated shell comments but not the commands before them', () => {
    const en = '```sh\nhelo server --udp-port 7779   # TCP on 7777, --see-below\n```\n';
    const es = '```sh\nhelo server --udp-port 7779   # TCP en el 7777, --vea-abajo\n```\n';
    assert.deepEqual(drift(en, es, false), []);
    assert.deepEqual([...commands(en)], ['helo server']);
  });
});

describe('the commands of the teaching guide against the CLI', () => {
  const guides = ['docs/TEACHING.md', 'docs/TEACHING.es.md'];
  /** `helo <command>` and its flags, from every `$ ` line of every code block (after a pipe too). */
  const typed = guides.flatMap((path) =>
    split(readRepoFile(path))
      .code.filter((line) => /^\s*\$ /.test(line))
      .flatMap((line) =>
        line.split(/\||&&|;/).flatMap((segment) => {
          const words = segment.trim().split(/\s+/);
          const at = words.findIndex((word) => word === 'helo' || word.endsWith('/helo'));
          if (at === -1) return [];
          const command = words[at + 1] === 'store' ? `store ${words[at + 2]}` : words[at + 1]!;
          const flagWords = words.slice(at + 2).filter((word) => word.startsWith('--'));
          return [{ path, command, flags: flagWords.map((word) => word.split('=')[0]!), line }];
        }),
      ),
  );
  const helps = new Map<string, Set<string>>();

  before(async () => {
    await Promise.all(
      [...new Set(typed.map(({ command }) => command))].map(async (command) => {
        const result = await runHelo([...command.split(' '), '--help']);
        assert.equal(result.status, 0, `helo ${command} --help exits 0; stderr: ${result.stderr}`);
        helps.set(
          command,
          new Set(result.stdout.match(/^ +--[a-z][a-z0-9-]*/gm)?.map((f) => f.trim())),
        );
      }),
    );
  });

  it('types server, client, grade and store commands', () => {
    const commandsTyped = new Set(typed.map(({ command }) => command));
    for (const command of ['server', 'client', 'grade', 'store list']) {
      assert.ok(commandsTyped.has(command), `the guide types helo ${command}`);
    }
  });

  it("uses only flags that each command's --help lists", () => {
    for (const { path, command, flags: given, line } of typed) {
      for (const flag of given) {
        assert.ok(
          helps.get(command)!.has(flag),
          `${path}: helo ${command} has no ${flag}: ${line}`,
        );
      }
    }
  });
});
