/**
 * The guided tour (docs/TOUR.md, docs/TOUR.es.md) is kept in step with the
 * CLI: every `helo <command> ...` a reader types in its code blocks uses
 * only flags that `helo <command> --help` lists (the real bin/helo is asked),
 * both languages type the same helo commands, and every source path the tour
 * names exists.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runHelo } from '../helpers/run-cli.js';

const TOURS = ['docs/TOUR.md', 'docs/TOUR.es.md'] as const;

/** The compiled test runs from dist/test/docs/, three levels below the repository root. */
function repoPath(path: string): string {
  return fileURLToPath(new URL(`../../../${path}`, import.meta.url));
}

/** What the reader types: the `$ ` lines of every fenced code block, prompt removed. */
function typedLines(markdown: string): string[] {
  const lines: string[] = [];
  for (const [, body] of markdown.matchAll(/^```[a-z]*\n([\s\S]*?)^```$/gm)) {
    for (const line of body!.split('\n')) {
      if (line.startsWith('$ ')) lines.push(line.slice(2));
    }
  }
  return lines;
}

interface HeloCommand {
  /** `server`, `client`, `store export`... */
  readonly command: string;
  readonly flags: readonly string[];
  /** The typed line it comes from, for messages. */
  readonly line: string;
}

/** Each `helo <command>` in a typed line (after a pipe too), with the flags given to it. */
function heloCommands(line: string): HeloCommand[] {
  const found: HeloCommand[] = [];
  for (const segment of line.split(/\||&&|;/)) {
    const words = segment.trim().split(/\s+/);
    const at = words.findIndex((word) => word === 'helo' || word.endsWith('/helo'));
    if (at === -1) continue;
    let command = words[at + 1] ?? '';
    let rest = words.slice(at + 2);
    if (command === 'store') {
      command = `store ${rest[0] ?? ''}`;
      rest = rest.slice(1);
    }
    const flags = rest.filter((word) => word.startsWith('--')).map((word) => word.split('=')[0]!);
    found.push({ command, flags, line });
  }
  return found;
}

/** The flags a help text lists: its lines that start with `--name`, indented. */
function listedFlags(help: string): Set<string> {
  return new Set([...help.matchAll(/^ +(--[a-z][a-z0-9-]*)/gm)].map((match) => match[1]!));
}

describe('the commands of the guided tour against the CLI', () => {
  const tours = TOURS.map((path) => ({ path, text: readFileSync(repoPath(path), 'utf8') }));
  const commands = new Map(
    tours.map(({ path, text }) => [path, typedLines(text).flatMap(heloCommands)] as const),
  );
  const helps = new Map<string, string>();

  before(async () => {
    const names = new Set([...commands.values()].flat().map(({ command }) => command));
    // One --help per command, all at once: the whole file stays well under a second or two.
    await Promise.all(
      [...names].map(async (name) => {
        const result = await runHelo([...name.split(' '), '--help']);
        assert.equal(result.status, 0, `helo ${name} --help exits 0; stderr: ${result.stderr}`);
        assert.match(result.stdout, new RegExp(`^usage: helo ${name}\\b`), `helo ${name} --help`);
        helps.set(name, result.stdout);
      }),
    );
  });

  it('finds the helo commands of every chapter in both languages', () => {
    for (const [path, found] of commands) {
      assert.ok(
        found.length >= 20,
        `${path}: expected at least 20 helo commands, found ${found.length}`,
      );
      const names = new Set(found.map(({ command }) => command));
      for (const name of ['server', 'client', 'bench', 'store list']) {
        assert.ok(names.has(name), `${path} runs helo ${name}`);
      }
    }
  });

  it("uses only flags that each command's --help lists", () => {
    for (const [path, found] of commands) {
      for (const { command, flags, line } of found) {
        const known = listedFlags(helps.get(command)!);
        for (const flag of flags) {
          assert.ok(known.has(flag), `${path}: 'helo ${command}' has no ${flag}, in: ${line}`);
        }
      }
    }
  });

  it('types the same helo commands in English and in Spanish', () => {
    const [english, spanish] = TOURS.map((path) => commands.get(path)!.map(({ line }) => line));
    assert.deepEqual(spanish, english);
  });

  it('names only source files that exist', () => {
    for (const { path, text } of tours) {
      const named = [...text.matchAll(/`((?:src|test|bench)\/[\w./-]+\.ts)`/g)].map(
        (match) => match[1]!,
      );
      assert.ok(named.length > 0, `${path} names source files`);
      for (const file of new Set(named)) {
        assert.ok(existsSync(repoPath(file)), `${path} names ${file}, which does not exist`);
      }
    }
  });
});
