/** `host:port` (or `[v6]:port`) → parts; the config validator guarantees the shape. */
export function splitHostPort(address: string): { host: string; port: number } {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(address);
  if (!m) throw new Error(`not a host:port address: ${address}`);
  return { host: m[1] ?? '', port: Number(m[2]) };
}
