import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** `host:port` (or `[v6]:port`) → parts; the config validator guarantees the shape. */
export function splitHostPort(address: string): { host: string; port: number } {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(address);
  if (!m) throw new Error(`not a host:port address: ${address}`);
  return { host: m[1] ?? '', port: Number(m[2]) };
}

/** A started HTTP listener: its base URL (`http://host:port`, wildcard hosts shown as loopback). */
export interface Listening {
  readonly base: string;
  readonly port: number;
  readonly close: () => Promise<void>;
}

/** Starts `server` on `address` (`host:port`, port 0 = any free port). */
export async function listenHttp(server: Server, address: string): Promise<Listening> {
  const { host, port } = splitHostPort(address);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  const shownHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  return {
    base: `http://${shownHost.includes(':') ? `[${shownHost}]` : shownHost}:${bound}`,
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
