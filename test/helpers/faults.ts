/**
 * Real faults for the store tests: files the kernel refuses to write, a
 * filesystem that is really full, a lock held by another process. Each
 * mechanism needs something this machine may not allow (root, a
 * capability, an ext4-like filesystem), so each comes with a probe that
 * says whether it works here and, when not, why: a test that cannot inject
 * its fault skips with that reason instead of passing without one.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { appendFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../../support/server-process.js';
import type { RawClient } from './raw-client.js';

/** Whether a fault can be produced here; `why` says what is missing when not. */
export type Capability = { readonly ok: true } | { readonly ok: false; readonly why: string };

function run(command: string, args: string[]): void {
  execFileSync(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function firstLine(error: unknown): string {
  const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim();
  const message = stderr || (error instanceof Error ? error.message : String(error));
  return message.split('\n')[0]!;
}

/**
 * `chattr +i` makes a file immutable: unlike `chmod`, it also stops writes
 * through descriptors opened before, such as a running server's. It needs
 * CAP_LINUX_IMMUTABLE (root outside a container) and a filesystem with
 * inode flags (ext4, xfs, btrfs; not every tmpfs).
 */
export function probeImmutable(dir: string): Capability {
  const file = join(dir, 'immutable-probe');
  writeFileSync(file, 'probe');
  try {
    try {
      run('chattr', ['+i', file]);
    } catch (error) {
      return { ok: false, why: `chattr +i is not possible here (${firstLine(error)})` };
    }
    try {
      appendFileSync(file, 'still writable');
      return { ok: false, why: 'chattr +i did not stop writes on this filesystem' };
    } catch {
      return { ok: true };
    } finally {
      run('chattr', ['-i', file]);
    }
  } finally {
    rmSync(file, { force: true });
  }
}

/** Makes files immutable (`chattr +i`), or writable again; missing files are skipped. */
export function setImmutable(files: readonly string[], immutable: boolean): void {
  for (const file of files) {
    try {
      run('chattr', [immutable ? '+i' : '-i', file]);
    } catch (error) {
      // Cleanup calls this on files that may not exist; setting the flag must work.
      if (immutable) throw error;
    }
  }
}

/**
 * A tmpfs of `size` (e.g. `'1m'`) mounted on a new directory `dir`: a disk
 * that really fills. Mounting needs root with CAP_SYS_ADMIN, which a
 * default container does not grant.
 */
export function mountSmallDisk(dir: string, size: string): Capability {
  mkdirSync(dir, { recursive: true });
  try {
    run('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'helo-faults', dir]);
    return { ok: true };
  } catch (error) {
    return { ok: false, why: `cannot mount a small tmpfs here (${firstLine(error)})` };
  }
}

/** Unmounts what mountSmallDisk mounted (lazily, so a lingering file cannot block it). */
export function unmountSmallDisk(dir: string): void {
  try {
    run('umount', ['-l', dir]);
  } catch {
    // Not mounted: the test skipped or failed before mounting.
  }
}

/** Writes zeros to `file` until the filesystem says ENOSPC; returns the bytes written. */
export function fillDisk(file: string): number {
  const chunk = Buffer.alloc(64 * 1024);
  let written = 0;
  for (;;) {
    try {
      appendFileSync(file, chunk);
      written += chunk.length;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOSPC') return written;
      throw error;
    }
  }
}

/**
 * Another process holding SQLite's write lock on `path` (`BEGIN EXCLUSIVE`)
 * until `release()`: what a long `helo store` maintenance command or a
 * second server on the same file would do.
 */
export class LockHolder {
  readonly #child: ChildProcess;

  private constructor(child: ChildProcess) {
    this.#child = child;
  }

  static async lock(path: string): Promise<LockHolder> {
    const script = `
      const Database = require('better-sqlite3');
      const db = new Database(${JSON.stringify(path)}, { fileMustExist: true });
      db.exec('BEGIN EXCLUSIVE');
      process.stdout.write('locked\\n');
      process.stdin.once('data', () => { db.exec('ROLLBACK'); db.close(); process.exit(0); });
    `;
    // cwd: the repository, so that require() finds its better-sqlite3.
    const child = spawn(process.execPath, ['-e', script], {
      cwd: REPO_ROOT,
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const [first] = (await Promise.race([
      once(child.stdout!, 'data'),
      once(child, 'exit').then(() => {
        throw new Error('the lock holder exited before taking the lock');
      }),
    ])) as [Buffer];
    if (first.toString() !== 'locked\n') throw new Error(`lock holder said ${String(first)}`);
    return new LockHolder(child);
  }

  /** Rolls back, closes the file and waits for the process to exit. */
  async release(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    const exited = once(this.#child, 'exit');
    this.#child.stdin!.write('release\n');
    await exited;
  }

  /** For cleanup after a failure: ends the process whatever its state. */
  kill(): void {
    if (this.#child.exitCode === null && this.#child.signalCode === null) {
      this.#child.kill('SIGKILL');
    }
  }
}

/**
 * Sends one request line (or a DATA line) and resolves with the reply that
 * follows, without its CRLF. One request at a time, so the reply is its own.
 */
export async function ask(client: RawClient, line: string, timeoutMs = 10_000): Promise<string> {
  const repliesBefore = countReplies(client.text);
  client.write(`${line}\r\n`);
  await client.until(
    () => countReplies(client.text) > repliesBefore,
    timeoutMs,
    `reply to ${line}`,
  );
  return client.text.split('\r\n')[repliesBefore]!;
}

function countReplies(text: string): number {
  return text.split('\r\n').length - 1;
}
