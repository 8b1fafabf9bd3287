/**
 * The soak's record of every payload it sent, and the check against the
 * store at the end (protocol.md §5: an acknowledged payload is stored, and
 * stored once).
 *
 * Each payload starts with a unique tag, `soak/<run>/<n>/`, followed by
 * random bytes (any byte but LF; never a final CR, which the framer would
 * take for part of the line ending), and the ledger keeps its hash and what
 * became of it:
 *
 *   acknowledged  answered 300 DRCV: must be in the store exactly once
 *   maybe         sent in full, then the client vanished before the reply:
 *                 stored once or not at all, never twice
 *   never         cut off before its LF, or over the line limit: must not
 *                 be stored
 *
 * Payloads shorter than a tag (0 to 15 bytes and up, the protocol's
 * smallest) can carry none: they are all `s` bytes, only ever acknowledged,
 * and checked by count: as many such records in the store as acknowledged.
 */
import { createHash, randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';

export type PayloadFate = 'acknowledged' | 'maybe' | 'never';

const LF = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
/** The one byte of the untagged short payloads (`s`). */
const SHORT_FILL = 0x73;

function isShortPayload(bytes: Buffer): boolean {
  return bytes.every((byte) => byte === SHORT_FILL);
}

interface Entry {
  readonly hash: string;
  fate: PayloadFate | 'pending';
  stored: number;
}

export interface LedgerVerdict {
  readonly records: number;
  readonly acknowledged: number;
  /** Acknowledged and found exactly once. */
  readonly acknowledgedStoredOnce: number;
  readonly lost: number;
  readonly duplicated: number;
  /** "never" payloads found in the store. */
  readonly storedButNever: number;
  readonly maybe: number;
  readonly maybeStored: number;
  /** Records whose bytes the soak never sent as a payload (a tag with other bytes included). */
  readonly foreign: number;
  readonly shortAcknowledged: number;
  readonly shortStored: number;
}

function hashOf(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('base64');
}

export class PayloadLedger {
  readonly #run = randomBytes(4).toString('hex');
  readonly #entries: Entry[] = [];
  #shortAcknowledged = 0;

  /**
   * A new payload of `size` bytes (a tagged one if `size` allows it), and
   * the function that records what became of it.
   */
  create(size: number): { payload: Buffer; settle: (fate: PayloadFate) => void } {
    const tag = Buffer.from(`soak/${this.#run}/${this.#entries.length}/`, 'latin1');
    if (size < tag.length) {
      const payload = Buffer.alloc(size, SHORT_FILL); // no LF, no final CR
      return {
        payload,
        settle: (fate) => {
          if (fate !== 'acknowledged') {
            throw new Error('a short payload can only be acknowledged: it carries no tag');
          }
          this.#shortAcknowledged++;
        },
      };
    }
    const payload = Buffer.concat([tag, randomBytes(size - tag.length)]);
    for (let i = tag.length; i < payload.length; i++) {
      if (payload[i] === LF) payload[i] = SPACE;
    }
    if (payload[payload.length - 1] === CR) payload[payload.length - 1] = SPACE;
    const entry: Entry = { hash: hashOf(payload), fate: 'pending', stored: 0 };
    this.#entries.push(entry);
    return {
      payload,
      settle: (fate) => {
        // An acknowledgement, once seen, is what the payload is held to.
        if (entry.fate !== 'acknowledged') entry.fate = fate;
      },
    };
  }

  /** Reads every record of the SQLite file and checks it against the ledger. */
  verifySqlite(path: string): LedgerVerdict {
    const db = new Database(path, { readonly: true, fileMustExist: true });
    let records = 0;
    let foreign = 0;
    let shortStored = 0;
    const tagPattern = new RegExp(`^soak/${this.#run}/(\\d+)/`);
    try {
      const rows = db.prepare('SELECT payload FROM records').raw().iterate() as Iterable<[Buffer]>;
      for (const [payload] of rows) {
        records++;
        if (isShortPayload(payload)) {
          shortStored++;
          continue;
        }
        const match = tagPattern.exec(payload.subarray(0, 40).toString('latin1'));
        const entry = match === null ? undefined : this.#entries[Number(match[1])];
        if (entry === undefined || entry.hash !== hashOf(payload)) {
          foreign++;
          continue;
        }
        entry.stored++;
      }
    } finally {
      db.close();
    }
    let acknowledged = 0;
    let acknowledgedStoredOnce = 0;
    let lost = 0;
    let duplicated = 0;
    let storedButNever = 0;
    let maybe = 0;
    let maybeStored = 0;
    for (const entry of this.#entries) {
      if (entry.stored > 1) duplicated++;
      switch (entry.fate) {
        case 'acknowledged':
          acknowledged++;
          if (entry.stored === 0) lost++;
          if (entry.stored === 1) acknowledgedStoredOnce++;
          break;
        case 'maybe':
        case 'pending': // a conversation that ended in an unexpected way: no promise either way
          maybe++;
          if (entry.stored > 0) maybeStored++;
          break;
        case 'never':
          if (entry.stored > 0) storedButNever++;
          break;
      }
    }
    return {
      records,
      acknowledged: acknowledged + this.#shortAcknowledged,
      acknowledgedStoredOnce:
        acknowledgedStoredOnce + Math.min(shortStored, this.#shortAcknowledged),
      lost: lost + Math.max(0, this.#shortAcknowledged - shortStored),
      duplicated: duplicated + Math.max(0, shortStored - this.#shortAcknowledged),
      storedButNever,
      maybe,
      maybeStored,
      foreign,
      shortAcknowledged: this.#shortAcknowledged,
      shortStored,
    };
  }
}
