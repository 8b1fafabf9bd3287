/**
 * Messages between a server's processes (fork and cluster modes), over the
 * IPC channel Node opens between a parent and its children. The channel
 * uses `serialization: 'advanced'` (structured clone), so payload Buffers
 * cross it as bytes, not as JSON.
 */
import { ProcessError } from '../../errors.js';

/** The end of an IPC channel: a ChildProcess, a cluster Worker, or `process` in the child. */
export interface IpcPeer {
  /** False once the channel has closed; sending then would raise an 'error' event. */
  readonly connected?: boolean;
  send(message: unknown, sendHandle?: unknown): boolean;
  on(event: 'message', listener: (message: unknown, handle?: unknown) => void): unknown;
  /** The channel closed: the other process is gone (or let it go). */
  on(event: 'disconnect', listener: () => void): unknown;
  off(event: 'message', listener: (message: unknown, handle?: unknown) => void): unknown;
  off(event: 'disconnect', listener: () => void): unknown;
}

export function isMessage<T extends { type: string }>(
  message: unknown,
  type: T['type'],
): message is T {
  return (
    typeof message === 'object' && message !== null && (message as { type?: unknown }).type === type
  );
}

/**
 * Sends unless the channel has closed (the other process is gone); false if
 * it could not. (`send()`'s own false only means "queued behind others".)
 */
export function sendIfConnected(peer: IpcPeer, message: unknown, handle?: unknown): boolean {
  if (peer.connected === false) return false;
  try {
    if (handle === undefined) peer.send(message);
    else peer.send(message, handle);
    return true;
  } catch {
    return false;
  }
}

/** This process's channel to its parent; only programs started with an IPC channel have one. */
export function parentChannel(): IpcPeer {
  if (process.send === undefined) {
    throw new ProcessError('this program is started by `helo server`, with an IPC channel');
  }
  return process as IpcPeer;
}
