/**
 * `--store URL` (README, `helo server`): which store a server writes to and the `helo
 * store` commands read from. `sqlite:PATH` (the default, durable),
 * `memory:` (nothing durable), or `postgres://…` / `postgresql://…` (one
 * database shared by many servers; docs/STORES.md).
 */
import { statSync } from 'node:fs';
import { InvalidOptionError, StoreError } from '../errors.js';
import { MemoryStore } from './memory-store.js';
import {
  PostgresStore,
  isPostgresUrl,
  parsePostgresUrl,
  redactPostgresUrl,
} from './postgres-store.js';
import { SqliteStore } from './sqlite-store.js';
import type { CommitInfo } from './sqlite-store.js';
import type { Store } from './store.js';

/** `helo server --store` (README): relative, so resolved against the working directory. */
export const DEFAULT_STORE_URL = 'sqlite:./data/helo.db';

export type StoreLocation =
  | { readonly kind: 'sqlite'; readonly path: string }
  | { readonly kind: 'memory' }
  | { readonly kind: 'postgres'; readonly url: string };

export interface OpenStoreOptions {
  /** Called after every group commit; see SqliteStore's `onCommit`. */
  readonly onCommit?: (info: CommitInfo) => void;
  /** SQLite only: how long to wait for another process's lock, in ms. Default 5000. */
  readonly busyTimeoutMs?: number;
}

const SQLITE_PREFIX = 'sqlite:';
const MEMORY_URL = 'memory:';

/**
 * `sqlite:PATH` takes the rest of the string as a file path, relative or
 * absolute (`sqlite:./data/helo.db`, `sqlite:/var/lib/helo/helo.db`).
 */
export function parseStoreUrl(url: string): StoreLocation {
  if (url === MEMORY_URL) return { kind: 'memory' };
  if (isPostgresUrl(url)) {
    // USER[:PASSWORD]@HOST[:PORT]/DATABASE, every part optional as in psql.
    if (parsePostgresUrl(url) !== null) return { kind: 'postgres', url };
  }
  if (url.startsWith(SQLITE_PREFIX)) {
    const path = url.slice(SQLITE_PREFIX.length);
    // ':memory:' (and '') would make SQLite open a private in-memory
    // database: a store that looks durable and is not.
    if (path.trim() !== '' && path !== ':memory:') return { kind: 'sqlite', path };
  }
  const shown = redactPostgresUrl(url);
  throw new InvalidOptionError(
    `--store must be sqlite:PATH, memory: or postgres://USER@HOST[:PORT]/DATABASE, got '${shown}'`,
  );
}

/**
 * Opens the store a server writes to, creating a SQLite file, or the
 * PostgreSQL schema, when missing. A PostgreSQL database that cannot be
 * reached fails here, with one line (docs/STORES.md: start-up exits).
 */
export async function openStore(url: string, options: OpenStoreOptions = {}): Promise<Store> {
  const location = parseStoreUrl(url);
  const onCommit = options.onCommit ? { onCommit: options.onCommit } : {};
  if (location.kind === 'memory') return new MemoryStore(onCommit);
  if (location.kind === 'postgres') return PostgresStore.open(location.url, onCommit);
  return SqliteStore.open(location.path, options);
}

/**
 * Opens a store written by another process, for `helo store list/export`:
 * never creates one. A `memory:` store lives inside its server process, so
 * there is nothing another process could read.
 */
export async function openStoreForReading(url: string): Promise<Store> {
  const location = parseStoreUrl(url);
  if (location.kind === 'postgres') return PostgresStore.openExisting(location.url);
  if (location.kind === 'memory') {
    throw new StoreError(
      'a memory: store lives inside its server process and cannot be read from another; use --store sqlite:PATH',
    );
  }
  return SqliteStore.openExisting(location.path);
}

/** The URL for logs and stdout: a PostgreSQL password is never shown. */
export function shownStoreUrl(url: string): string {
  return isPostgresUrl(url) ? redactPostgresUrl(url) : url;
}

/**
 * For start-up logs: a warning when the SQLite file lets other users read
 * or write it. New files are made private (sqlite-store.ts); an existing
 * file keeps the mode its owner gave it, which may be on purpose (a backup
 * user's group), so it is reported, not changed.
 */
export function storeModeWarning(url: string): string | null {
  const location = parseStoreUrl(url);
  if (location.kind !== 'sqlite') return null;
  const mode = statSync(location.path, { throwIfNoEntry: false })?.mode;
  if (mode === undefined || (mode & 0o077) === 0) return null;
  const octal = (mode & 0o777).toString(8).padStart(3, '0');
  return `store ${location.path} has mode ${octal}: other users can read the records; chmod 600 ${location.path}*`;
}
