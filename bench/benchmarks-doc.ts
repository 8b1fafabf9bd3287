/**
 * docs/benchmarks.md is written by two scripts: `npm run bench:modes` and
 * `npm run bench:memory`. Each owns one section between two HTML comments
 * and rewrites only that section, so either can be re-run alone. A missing
 * file starts with the preamble below; a missing section goes in its place
 * in SECTION_ORDER.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCHMARKS_DOC = fileURLToPath(new URL('../../docs/benchmarks.md', import.meta.url));

export const SECTION_ORDER = ['modes', 'memory'] as const;
export type SectionName = (typeof SECTION_ORDER)[number];

const PREAMBLE = `# Benchmarks: five ways to serve many clients, and idle connections

These figures come from two scripts in \`bench/\`, run on the machine
described in each section. They are there to be reproduced and argued
with, not quoted as absolute truths: the machine was shared, a few seconds
per measurement is short, and a laptop will give other numbers. What
should carry over is the shape: which model wins where, and by how much.
The concurrency models themselves are described in
[ARCHITECTURE.md](ARCHITECTURE.md#four-ways-to-serve-many-clients---mode);
the load generator, in [BENCH.md](BENCH.md).

Each section below is rewritten by the command named in its title; the
rest of this file is not.
`;

const begin = (name: SectionName): string => `<!-- ${name}: begin (written by the script) -->`;
const end = (name: SectionName): string => `<!-- ${name}: end -->`;

/** Replaces (or inserts) section `name` of `text` with `body`. Pure. */
export function withSection(text: string, name: SectionName, body: string): string {
  const block = `${begin(name)}\n\n${body.trim()}\n\n${end(name)}\n`;
  const from = text.indexOf(begin(name));
  const to = text.indexOf(end(name));
  if (from !== -1 && to > from) {
    const after = text.slice(to + end(name).length).replace(/^\n/, '');
    return text.slice(0, from) + block + after;
  }
  // Before the first section that comes later in the order, else at the end.
  const later = SECTION_ORDER.slice(SECTION_ORDER.indexOf(name) + 1)
    .map((other) => text.indexOf(begin(other)))
    .filter((index) => index !== -1);
  if (later.length > 0) {
    const at = Math.min(...later);
    return `${text.slice(0, at)}${block}\n${text.slice(at)}`;
  }
  return `${text.trimEnd()}\n\n${block}`;
}

export function writeSection(name: SectionName, body: string, path = BENCHMARKS_DOC): void {
  const text = existsSync(path) ? readFileSync(path, 'utf8') : PREAMBLE;
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, withSection(text, name, body));
}
