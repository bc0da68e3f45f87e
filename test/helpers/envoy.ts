/**
 * Real Envoy in front of a real Tollgate gRPC server and a tiny recording upstream, for tests
 * that need the whole edge. Everything started here is stopped by `stopAll()` (processes.ts).
 */
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ResponsePhases } from '../../src/response/phases.js';
import type { ProcessingModeSpec } from '../../src/response/mode.js';
import type { Decision } from '../../src/domain/decision.js';
import type { InboundRequest } from '../../src/domain/request.js';
import { startGrpcServer } from '../../src/server/grpc.js';
import type { GrpcServerHandle } from '../../src/server/grpc.js';
import { startEnvoy } from '../../src/stack/envoy.js';
import type { RunningEnvoy } from '../../src/stack/envoy.js';
import { onStopAll } from './processes.js';

export interface RecordedRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

export interface RecordingUpstream {
  readonly url: string;
  readonly requests: RecordedRequest[];
  /** Replace the handler; default answers 200 `{"ok":true}`. */
  respond: (req: RecordedRequest, res: import('node:http').ServerResponse) => void;
  close(): Promise<void>;
}

/** A node:http server on a free port that records every request it receives. */
export async function startRecordingUpstream(): Promise<RecordingUpstream> {
  const requests: RecordedRequest[] = [];
  const upstream: RecordingUpstream = {
    url: '',
    requests,
    respond: (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const recorded = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      };
      requests.push(recorded);
      upstream.respond(recorded, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  (upstream as { url: string }).url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  onStopAll(() => upstream.close());
  return upstream;
}

export interface Edge {
  readonly envoy: RunningEnvoy;
  readonly grpc: GrpcServerHandle;
}

/** Tollgate's gRPC server (port 0) + real Envoy (port 0) toward `upstreamUrl`. */
export async function startEdge(options: {
  upstreamUrl: string;
  authorize(req: InboundRequest): Promise<Decision>;
  newExchange?: () => ResponsePhases;
  identityHeaders?: readonly string[];
  processingMode?: ProcessingModeSpec;
}): Promise<Edge> {
  const grpc = await startGrpcServer({
    address: '127.0.0.1:0',
    authorize: (request) => options.authorize(request),
    newExchange: options.newExchange ?? (() => ({})),
    ...(options.processingMode !== undefined ? { processingMode: options.processingMode } : {}),
  });
  onStopAll(() => grpc.shutdown(0));
  const envoy = await startEnvoy({
    grpcPort: grpc.port,
    upstreamUrl: options.upstreamUrl,
    ...(options.identityHeaders !== undefined ? { identityHeaders: options.identityHeaders } : {}),
    ...(options.processingMode !== undefined ? { processingMode: options.processingMode } : {}),
  });
  onStopAll(() => envoy.stop());
  return { envoy, grpc };
}
