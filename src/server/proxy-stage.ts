/**
 * `--proxy-protocol` (docs/PROTOCOL.md §10) around a socket: who may send a
 * header (`--proxy-allow`), reading it within `--proxy-timeout` of accept
 * with the pure parser (src/core/proxy-header.ts), and what it tells the
 * rest of the server: the client's address for limits, logs and records,
 * and the balancer's address for the record's `proxy` field.
 *
 * Every refusal closes the socket without a reply: nothing the client sent
 * is answered, processed or stored.
 */
import { BlockList, isIPv4, isIPv6, type Socket } from 'node:net';
import { ProxyHeaderParser, type ProxyHeader } from '../core/proxy-header.js';
import { InvalidOptionError } from '../errors.js';

/** What the header says about a connection it was accepted on. */
export interface ProxiedClient {
  /** The client as `peer` shows it: `IP:PORT` (IPv6 in brackets) or `unix:PATH`. */
  readonly peer: string;
  /** The address `--max-connections-per-ip` counts. */
  readonly ip: string;
  /** Where the connection really came from (the balancer), as `peer` would show it. */
  readonly proxy: string;
}

/**
 * `--proxy-allow`'s CIDR blocks as a BlockList (a rule set; nothing is
 * blocked by it). Throws InvalidOptionError naming the option.
 */
export function proxyAllowList(cidrs: readonly string[]): BlockList {
  if (!Array.isArray(cidrs))
    throw new InvalidOptionError('proxyAllow must be a list of CIDR blocks');
  const list = new BlockList();
  for (const cidr of cidrs) {
    // A bare address (`127.0.0.1`, what people type first) is that one host: /32 or /128.
    const match = typeof cidr === 'string' ? /^([^/\s]+)(?:\/(\d{1,3}))?$/.exec(cidr) : null;
    const [, address = '', bits] = match ?? [];
    const family = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : null;
    const prefix = bits === undefined ? (family === 'ipv4' ? 32 : 128) : Number(bits);
    if (match === null || family === null || prefix > (family === 'ipv4' ? 32 : 128)) {
      throw new InvalidOptionError(
        `proxyAllow must be CIDR blocks such as 10.0.0.0/8 or ::1/128, got '${String(cidr)}'`,
      );
    }
    list.addSubnet(address, prefix, family);
  }
  return list;
}

/**
 * Answers already given, per allow list. Behind a balancer every connection
 * comes from one of a few addresses, and `BlockList.check()` builds a
 * `SocketAddress` (a native handle) to answer: 2.3 µs a call, against
 * about 30 ns for a lookup here (docs/PERFORMANCE.md). Emptied when full,
 * so that many sources (a scan) cannot grow it.
 */
const answers = new WeakMap<BlockList, Map<string, boolean>>();
const MAX_ANSWERS = 1024;

/** Whether a TCP or TLS source address may send a header (§10: Unix sockets always may). */
export function isTrustedSource(allow: BlockList, address: string | undefined): boolean {
  if (address === undefined) return false;
  let known = answers.get(allow);
  if (known === undefined) answers.set(allow, (known = new Map()));
  let isTrusted = known.get(address);
  if (isTrusted === undefined) {
    const family = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : null;
    isTrusted = family !== null && allow.check(address, family);
    if (known.size >= MAX_ANSWERS) known.clear();
    known.set(address, isTrusted);
  }
  return isTrusted;
}

/** `127.0.0.1:53122`, `[::1]:53122`. */
function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/**
 * The client a header names, given the connection's own `peer` and
 * address (which stand for LOCAL, UNKNOWN, UNSPEC and an empty Unix path).
 */
export function proxiedClient(header: ProxyHeader, ownPeer: string, ownIp: string): ProxiedClient {
  const source = header.command === 'proxy' ? header.source : undefined;
  if (source === undefined || source.address === '') {
    return { peer: ownPeer, ip: ownIp, proxy: ownPeer };
  }
  const isIp = isIPv4(source.address) || isIPv6(source.address);
  return {
    peer: isIp ? hostPort(source.address, source.port) : `unix:${source.address}`,
    ip: isIp ? source.address : `unix:${source.address}`,
    proxy: ownPeer,
  };
}

/**
 * Reads the header at the start of `socket`, at most `timeoutMs` after now
 * (call it at accept). `done` gets the header, or the reason for a refusal
 * (the socket is then already destroyed). On success the socket is paused
 * with the bytes after the header put back in front of it (§10: they are
 * the session's); its next reader resumes it.
 */
export function readProxyHeader(
  socket: Socket,
  timeoutMs: number,
  done: (header: ProxyHeader | null, reason: string) => void,
): void {
  const parser = new ProxyHeaderParser();
  let isDone = false;
  const finish = (header: ProxyHeader | null, reason: string): void => {
    if (isDone) return;
    isDone = true;
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('end', onEnd);
    socket.off('close', onEnd);
    if (header === null) socket.destroy();
    done(header, reason);
  };
  const onData = (chunk: Buffer): void => {
    const result = parser.push(chunk);
    if (result.kind === 'need-more') return;
    if (result.kind === 'invalid') {
      finish(null, result.reason);
      return;
    }
    socket.pause();
    if (result.rest.length > 0) socket.unshift(result.rest);
    finish(result.header, '');
  };
  const onEnd = (): void => finish(null, 'closed before the PROXY header was complete');
  const timer = setTimeout(() => finish(null, 'PROXY header not complete in time'), timeoutMs);
  socket.on('error', ignoreError);
  socket.on('data', onData);
  socket.once('end', onEnd);
  socket.once('close', onEnd);
}

function ignoreError(): void {}
