import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { MemoryStore } from '../../src/store/memory-store.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { storeContract } from './store-contract.js';

let directory = '';
let files = 0;

before(async () => {
  directory = await mkdtemp(join(tmpdir(), 'helo-store-contract-'));
});

after(async () => {
  await rm(directory, { recursive: true, force: true });
});

storeContract('MemoryStore', () => new MemoryStore());

// A new file per test: the contract assumes an empty store.
storeContract('SqliteStore', () => SqliteStore.open(join(directory, `contract-${++files}.db`)));
