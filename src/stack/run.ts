/**
 * Envoy and the sidecar together on this machine: the sidecar in this process, Envoy as a
 * child. Shared by `tollgate stack` and `tollgate demo`.
 */
import { App } from '../app.js';
import type { Config } from '../config/schema.js';
import { BASE_PROCESSING_MODE } from '../response/mode.js';
import type { Logger } from '../telemetry/logger.js';
import type { BootstrapOptions } from './bootstrap.js';
import { startEnvoy } from './envoy.js';

export interface RunningStack {
  readonly app: App;
  readonly envoyUrl: string;
  /** host:port of the gRPC listener. */
  readonly grpc: string;
  readonly metrics?: string;
  /** Envoy, then the sidecar, within `graceMs` (default `server.shutdownGraceSeconds`). */
  stop(graceMs?: number): Promise<void>;
}

/**
 * The Envoy options the stack runs with, for a sidecar listening on `grpcPort`. Exported so
 * the benchmark (bench/) renders exactly the bootstrap the stack renders.
 */
export function stackBootstrapOptions(config: Config, grpcPort: number, upstreamUrl: string, port: number): BootstrapOptions {
  return {
    grpcPort,
    upstreamUrl,
    port,
    identityHeaders: Object.keys(config.identityHeaders),
    maxRequestBytes: config.server.maxRequestBytes,
    // The same base mode the gRPC server merges its per-request overrides onto.
    processingMode: BASE_PROCESSING_MODE,
  };
}

export async function runStack(opts: {
  config: Config;
  upstreamUrl: string;
  port: number;
  logger: Logger;
}): Promise<RunningStack> {
  const app = await App.start({ config: opts.config, logger: opts.logger });
  let envoy;
  try {
    envoy = await startEnvoy(stackBootstrapOptions(opts.config, app.grpcPort, opts.upstreamUrl, opts.port));
  } catch (err) {
    await app.stop(0);
    throw err;
  }
  const running = envoy;
  return {
    app,
    envoyUrl: running.url,
    grpc: app.grpcAddress,
    ...(app.metricsUrl !== undefined ? { metrics: app.metricsUrl } : {}),
    async stop(graceMs = app.config.server.shutdownGraceSeconds * 1000) {
      const deadline = Date.now() + graceMs;
      // Envoy exits on SIGTERM at once; one that does not may take at most half the grace period.
      await running.stop(Math.min(5000, graceMs / 2));
      await app.stop(Math.max(0, deadline - Date.now()));
    },
  };
}

/** The one JSON line `stack` prints on stdout when traffic can flow (DESIGN section 3). */
export function readyLine(stack: RunningStack, extra: Record<string, unknown> = {}): string {
  return `${JSON.stringify({ event: 'ready', envoy: stack.envoyUrl, grpc: stack.grpc, metrics: stack.metrics ?? null, ...extra })}\n`;
}
