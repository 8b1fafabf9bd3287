/** `host:port` for messages and URLs, the one formatter every module uses. */

/** `127.0.0.1:7777`, or `[::1]:7777` for an IPv6 host (already bracketed ones stay as they are). */
export function formatHostPort(host: string, port: number): string {
  return `${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${port}`;
}
