/**
 * PROXY protocol headers as a load balancer sends them (docs/PROTOCOL.md §10),
 * built here independently of src/core/proxy-header.ts, for its tests and the
 * server's.
 */
import { isIPv4 } from 'node:net';

const SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

export interface V2Options {
  readonly command?: 'local' | 'proxy';
  /** `inet`, `inet6`, `unix`, `unspec`. */
  readonly family?: 'inet' | 'inet6' | 'unix' | 'unspec';
  readonly source?: { address: string; port: number };
  readonly destination?: { address: string; port: number };
  /** TLVs to append after the addresses, as [type, value]. */
  readonly tlvs?: readonly (readonly [number, Buffer])[];
}

/** `PROXY TCP4 src dst sport dport\r\n` (or TCP6, chosen by the source address). */
export function proxyV1(
  source: { address: string; port: number },
  destination: { address: string; port: number },
): Buffer {
  const family = isIPv4(source.address) ? 'TCP4' : 'TCP6';
  return Buffer.from(
    `PROXY ${family} ${source.address} ${destination.address} ${source.port} ${destination.port}\r\n`,
    'latin1',
  );
}

function ipv6Bytes(address: string): Buffer {
  const [head = '', tail = ''] = address.split('::');
  const groups = (part: string): number[] =>
    part === '' ? [] : part.split(':').map((g) => parseInt(g, 16));
  const h = groups(head);
  const t = address.includes('::') ? groups(tail) : [];
  const all = [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
  const out = Buffer.alloc(16);
  all.forEach((group, i) => out.writeUInt16BE(group, i * 2));
  return out;
}

/** A version 2 header. */
export function proxyV2(options: V2Options = {}): Buffer {
  const command = options.command ?? 'proxy';
  const family = options.family ?? 'inet';
  const src = options.source ?? { address: '203.0.113.7', port: 40000 };
  const dst = options.destination ?? { address: '192.0.2.1', port: 7777 };
  let addresses: Buffer;
  let familyByte: number;
  if (family === 'inet') {
    familyByte = 0x11;
    addresses = Buffer.alloc(12);
    Buffer.from(src.address.split('.').map(Number)).copy(addresses, 0);
    Buffer.from(dst.address.split('.').map(Number)).copy(addresses, 4);
    addresses.writeUInt16BE(src.port, 8);
    addresses.writeUInt16BE(dst.port, 10);
  } else if (family === 'inet6') {
    familyByte = 0x21;
    addresses = Buffer.alloc(36);
    ipv6Bytes(src.address).copy(addresses, 0);
    ipv6Bytes(dst.address).copy(addresses, 16);
    addresses.writeUInt16BE(src.port, 32);
    addresses.writeUInt16BE(dst.port, 34);
  } else if (family === 'unix') {
    familyByte = 0x31;
    addresses = Buffer.alloc(216);
    addresses.write(src.address, 0, 'utf8');
    addresses.write(dst.address, 108, 'utf8');
  } else {
    familyByte = 0x00;
    addresses = Buffer.alloc(0);
  }
  const tlvs = (options.tlvs ?? []).map(([type, value]) => {
    const tlv = Buffer.alloc(3 + value.length);
    tlv[0] = type;
    tlv.writeUInt16BE(value.length, 1);
    value.copy(tlv, 3);
    return tlv;
  });
  const body = Buffer.concat([addresses, ...tlvs]);
  const fixed = Buffer.alloc(4);
  fixed[0] = 0x20 | (command === 'proxy' ? 1 : 0);
  fixed[1] = familyByte;
  fixed.writeUInt16BE(body.length, 2);
  return Buffer.concat([SIGNATURE, fixed, body]);
}
