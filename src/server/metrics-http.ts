/**
 * The metrics HTTP listener: `GET /metrics` (Prometheus text), `GET /healthz`, and any extra
 * read-only routes the app mounts beside them (`GET /budget`, budgets/view.ts; `GET /counters`,
 * server/counters.ts).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Metrics } from '../telemetry/metrics.js';
import { listenHttp } from './address.js';

export interface MetricsServer {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/** A GET handler mounted at one path. */
export type Route = (req: IncomingMessage, res: ServerResponse) => void;

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/**
 * `route` behind `server.metricsToken`: without a token (`token()` undefined) it is open; with
 * one, a request must carry `Authorization: Bearer <token>` (compared in constant time) or gets
 * 401. The token is read per request, so a reload that changes it applies at once.
 */
export function requireToken(token: () => string | undefined, route: Route): Route {
  return (req, res) => {
    const expected = token();
    if (expected !== undefined) {
      const m = /^Bearer +(\S+) *$/i.exec(req.headers.authorization ?? '');
      if (m === null || !timingSafeEqual(digest(m[1] ?? ''), digest(expected))) {
        res.writeHead(401, {
          'content-type': 'application/json',
          'cache-control': 'no-store',
          'www-authenticate': 'Bearer realm="tollgate-metrics"',
        });
        res.end(`${JSON.stringify({ error: 'this route needs Authorization: Bearer <server.metricsToken>' })}\n`);
        return;
      }
    }
    route(req, res);
  };
}

export async function startMetricsServer(
  address: string,
  metrics: Metrics,
  routes: Readonly<Record<string, Route>> = {},
): Promise<MetricsServer> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const route = Object.hasOwn(routes, path) ? routes[path] : undefined;
    if (req.method === 'GET' && route !== undefined) {
      route(req, res);
      return;
    }
    if (req.method === 'GET' && path === '/metrics') {
      metrics.exporter.getMetricsRequestHandler(req, res);
      return;
    }
    if (req.method === 'GET' && path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  });
  const listening = await listenHttp(server, address);
  return { url: `${listening.base}/metrics`, port: listening.port, close: listening.close };
}
