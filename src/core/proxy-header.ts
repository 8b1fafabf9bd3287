/**
 * The PROXY protocol header a load balancer puts in front of a connection
 * (docs/PROTOCOL.md §10), version 1 (one text line) or version 2 (binary),
 * told apart by their first bytes. Pure and incremental, like framer.ts:
 * bytes in, one result out; no socket, timer or clock.
 *
 *   push(chunk) --> need-more     (nothing wrong yet; at most MAX_HEADER_BYTES held)
 *               --> done          the header, and the bytes after it (the session's)
 *               --> invalid       why: the connection is closed without a reply
 *
 * Anything that cannot begin a header is refused at its first wrong byte
 * (`HELO` fails on `H`), so a client that speaks the protocol directly is
 * turned away at once, not after the timeout.
 */
import { isIPv4, isIPv6 } from 'node:net';

export interface ProxyAddress {
  readonly address: string;
  /** The TCP port; 0 for a Unix socket's path. */
  readonly port: number;
}

export interface ProxyHeader {
  /**
   * `proxy`: the header names the connection's client. `local`: it does not
   * (a v2 `LOCAL`, a v1 `UNKNOWN`, the `UNSPEC` family: a balancer's health
   * check), so the connection's own address stands.
   */
  readonly command: 'proxy' | 'local';
  readonly version: 1 | 2;
  /** The client, for `proxy` (a Unix path as `address`, port 0). */
  readonly source?: ProxyAddress;
  readonly destination?: ProxyAddress;
  /** The header's length in bytes, from the first byte of the connection. */
  readonly consumed: number;
}

export type ProxyParse =
  | { readonly kind: 'need-more' }
  | {
      readonly kind: 'done';
      readonly header: ProxyHeader;
      /** The bytes of the last chunk after the header: the session's first bytes (§10). */
      readonly rest: Buffer;
    }
  | { readonly kind: 'invalid'; readonly reason: string };

/** A v1 line, CRLF included, is at most this long (HAProxy's proxy-protocol.txt). */
const MAX_V1_BYTES = 107;
/**
 * The most a v2 header may take here: the 16 fixed bytes, the largest
 * address block (two Unix paths, 216) and room for a balancer's TLVs.
 * Longer ones are refused rather than buffered (§10: oversized).
 */
const MAX_V2_BYTES = 16 + 216 + 1800;
/** Never more than this is held while a header is incomplete. */
export const MAX_HEADER_BYTES = MAX_V2_BYTES;

const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
const V2_SIGNATURE = Buffer.from([
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
]);
const V2_FIXED_BYTES = 16;
const CR = 0x0d;
const LF = 0x0a;
const NEED_MORE: ProxyParse = Object.freeze({ kind: 'need-more' });

/** One connection's header: push its bytes until the answer is not `need-more`. */
export class ProxyHeaderParser {
  /** The bytes held so far (only while incomplete: never past MAX_HEADER_BYTES). */
  #held: Buffer = Buffer.alloc(0);
  #result: ProxyParse = NEED_MORE;

  /** How many bytes are held while the header is incomplete. */
  get bufferedBytes(): number {
    return this.#held.length;
  }

  push(chunk: Buffer): ProxyParse {
    if (this.#result.kind !== 'need-more') return this.#result;
    const before = this.#held.length;
    // Hold at most what a header can need, plus one byte to see it is too long.
    const take = Math.min(chunk.length, MAX_HEADER_BYTES + 1 - before);
    const held =
      before === 0 ? chunk.subarray(0, take) : Buffer.concat([this.#held, chunk.subarray(0, take)]);
    const result = parseHeader(held);
    if (result.kind === 'need-more') {
      // Copy: the caller's chunk may be reused once push() returns.
      this.#held = Buffer.from(held);
      return result;
    }
    this.#held = Buffer.alloc(0);
    if (result.kind === 'invalid') return (this.#result = result);
    const { source, destination, ...rest } = result;
    const header: ProxyHeader = {
      command: rest.command,
      version: rest.version,
      ...(source && { source }),
      ...(destination && { destination }),
      consumed: rest.consumed,
    };
    this.#result = { kind: 'done', header, rest: chunk.subarray(header.consumed - before) };
    return this.#result;
  }
}

type Parsed =
  { kind: 'need-more' } | { kind: 'invalid'; reason: string } | ({ kind: 'header' } & ProxyHeader);

/** Parses a whole header from the start of `bytes`, or says more is needed. */
function parseHeader(bytes: Buffer): Parsed {
  if (bytes.length === 0) return NEED;
  if (bytes[0] === V1_PREFIX[0]) {
    if (!startsLike(bytes, V1_PREFIX)) return invalid('not a PROXY protocol header');
    return parseV1(bytes);
  }
  if (bytes[0] === V2_SIGNATURE[0]) {
    if (!startsLike(bytes, V2_SIGNATURE)) return invalid('not a PROXY protocol header');
    return parseV2(bytes);
  }
  return invalid('not a PROXY protocol header');
}

const NEED = { kind: 'need-more' } as const;

function invalid(reason: string): Parsed {
  return { kind: 'invalid', reason };
}

/** Whether `bytes` and `prefix` agree on as many bytes as both have. */
function startsLike(bytes: Buffer, prefix: Buffer): boolean {
  const n = Math.min(bytes.length, prefix.length);
  return bytes.compare(prefix, 0, n, 0, n) === 0;
}

// ---- Version 1: `PROXY TCP4 <src> <dst> <srcport> <dstport>\r\n` ----------

function parseV1(bytes: Buffer): Parsed {
  const lf = bytes.indexOf(LF, V1_PREFIX.length);
  if (lf === -1) {
    return bytes.length >= MAX_V1_BYTES ? invalid('v1 header longer than 107 bytes') : NEED;
  }
  if (lf + 1 > MAX_V1_BYTES) return invalid('v1 header longer than 107 bytes');
  // §10: a bare LF is malformed.
  if (bytes[lf - 1] !== CR) return invalid('v1 header not ended by CRLF');
  const line = bytes.toString('latin1', V1_PREFIX.length, lf - 1);
  const consumed = lf + 1;
  // HAProxy's text: after UNKNOWN the receiver ignores the rest of the line.
  if (line === 'UNKNOWN' || line.startsWith('UNKNOWN ')) {
    return { kind: 'header', version: 1, command: 'local', consumed };
  }
  const fields = line.split(' ');
  if (fields.length !== 5) return invalid('v1 header: wrong number of fields');
  const [family, src, dst, srcPort, dstPort] = fields as [string, string, string, string, string];
  const isAddress = family === 'TCP4' ? isIPv4 : family === 'TCP6' ? isIPv6 : null;
  if (isAddress === null) return invalid('v1 header: unknown protocol');
  if (!isAddress(src) || !isAddress(dst)) return invalid('v1 header: bad address');
  const sourcePort = v1Port(srcPort);
  const destinationPort = v1Port(dstPort);
  if (sourcePort === null || destinationPort === null) return invalid('v1 header: bad port');
  return {
    kind: 'header',
    version: 1,
    command: 'proxy',
    source: { address: src, port: sourcePort },
    destination: { address: dst, port: destinationPort },
    consumed,
  };
}

/** A port in decimal, 0–65535, without a sign or leading zeros; otherwise null. */
function v1Port(text: string): number | null {
  if (!/^(?:0|[1-9][0-9]{0,4})$/.test(text)) return null;
  const port = Number(text);
  return port <= 65535 ? port : null;
}

// ---- Version 2: signature, version/command, family/transport, length ------

const AF_UNSPEC = 0x0;
const AF_INET = 0x1;
const AF_INET6 = 0x2;
const AF_UNIX = 0x3;
const TRANSPORT_UNSPEC = 0x0;
const TRANSPORT_STREAM = 0x1;
/** The address block's length per family. */
const ADDRESS_BYTES: Record<number, number> = { [AF_INET]: 12, [AF_INET6]: 36, [AF_UNIX]: 216 };
const PP2_TYPE_CRC32C = 0x03;

function parseV2(bytes: Buffer): Parsed {
  if (bytes.length < V2_FIXED_BYTES) return NEED;
  const versionCommand = bytes[12]!;
  if (versionCommand >> 4 !== 2) return invalid('v2 header: unsupported version');
  const command = versionCommand & 0x0f;
  if (command > 1) return invalid('v2 header: unknown command');
  const familyTransport = bytes[13]!;
  const family = familyTransport >> 4;
  const transport = familyTransport & 0x0f;
  const length = bytes.readUInt16BE(14);
  const consumed = V2_FIXED_BYTES + length;
  if (consumed > MAX_V2_BYTES) return invalid('v2 header too long');
  // Judge what the fixed part says before waiting for the rest of it.
  const isLocal = command === 0;
  if (!isLocal) {
    if (family > AF_UNIX) return invalid('v2 header: unknown address family');
    if (family !== AF_UNSPEC && transport !== TRANSPORT_STREAM) {
      return invalid('v2 header: not a stream connection');
    }
    if (family === AF_UNSPEC && transport !== TRANSPORT_UNSPEC && transport !== TRANSPORT_STREAM) {
      return invalid('v2 header: not a stream connection');
    }
  }
  const addressBytes = ADDRESS_BYTES[family] ?? 0;
  if (!isLocal && length < addressBytes) return invalid('v2 header: address block too short');
  if (bytes.length < consumed) return NEED;
  const header = bytes.subarray(0, consumed);
  // LOCAL may carry any address block, or none: its TLVs are checked only where they can be found.
  const tlvStart = length >= addressBytes ? V2_FIXED_BYTES + addressBytes : consumed;
  const tlvError = checkTlvs(header, tlvStart);
  if (tlvError !== null) return invalid(tlvError);
  if (isLocal || family === AF_UNSPEC)
    return { kind: 'header', version: 2, command: 'local', consumed };
  const at = V2_FIXED_BYTES;
  let source: ProxyAddress;
  let destination: ProxyAddress;
  if (family === AF_INET) {
    source = { address: ipv4At(header, at), port: header.readUInt16BE(at + 8) };
    destination = { address: ipv4At(header, at + 4), port: header.readUInt16BE(at + 10) };
  } else if (family === AF_INET6) {
    source = { address: ipv6At(header, at), port: header.readUInt16BE(at + 32) };
    destination = { address: ipv6At(header, at + 16), port: header.readUInt16BE(at + 34) };
  } else {
    source = { address: unixPathAt(header, at), port: 0 };
    destination = { address: unixPathAt(header, at + 108), port: 0 };
  }
  return { kind: 'header', version: 2, command: 'proxy', source, destination, consumed };
}

/**
 * Walks the TLVs from `start` to the header's end: each must fit, and a
 * CRC32C one must match the header (§10); the others are ignored.
 */
function checkTlvs(header: Buffer, start: number): string | null {
  let at = start;
  while (at < header.length) {
    if (at + 3 > header.length) return 'v2 header: truncated TLV';
    const type = header[at]!;
    const length = header.readUInt16BE(at + 1);
    const end = at + 3 + length;
    if (end > header.length) return 'v2 header: truncated TLV';
    if (type === PP2_TYPE_CRC32C) {
      if (length !== 4) return 'v2 header: bad CRC32C TLV';
      const expected = header.readUInt32BE(at + 3);
      const zeroed = Buffer.from(header);
      zeroed.fill(0, at + 3, end);
      if (crc32c(zeroed) !== expected) return 'v2 header: CRC32C mismatch';
    }
    at = end;
  }
  return null;
}

function ipv4At(bytes: Buffer, at: number): string {
  return `${bytes[at]}.${bytes[at + 1]}.${bytes[at + 2]}.${bytes[at + 3]}`;
}

/** The address in the usual compressed form (`2001:db8::1`), as Node reports a socket's. */
function ipv6At(bytes: Buffer, at: number): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(bytes.readUInt16BE(at + i * 2));
  // An IPv4-mapped address as Node writes it: ::ffff:1.2.3.4.
  if (groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff) {
    return `::ffff:${ipv4At(bytes, at + 12)}`;
  }
  // The longest run of two or more zero groups becomes `::` (RFC 5952).
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((group) => group.toString(16));
  if (bestStart === -1) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

/** A 108-byte, NUL-padded Unix socket path. */
function unixPathAt(bytes: Buffer, at: number): string {
  const field = bytes.subarray(at, at + 108);
  const nul = field.indexOf(0);
  return field.toString('utf8', 0, nul === -1 ? field.length : nul);
}

// ---- CRC32C (Castagnoli), for the PP2_TYPE_CRC32C TLV ---------------------

let crcTable: Uint32Array | null = null;

/** CRC32C of `bytes` (reflected polynomial 0x82F63B78), as the TLV carries it. */
export function crc32c(bytes: Uint8Array): number {
  if (crcTable === null) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (const byte of bytes) crc = crcTable[(crc ^ byte) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
