/**
 * Envoy and the sidecar together on this machine: the sidecar in this process, Envoy as a
 * child. Shared by `tollgate stack` and `tollgate demo`.
 */
import { App } from '../app.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../telemetry/logger.js';
import { startEnvoy } from './envoy.js';

export interface RunningStack {
  readonly app: App;
  readonly envoyUrl: string;
  /** host:port of the gRPC listener. */
  readonly grpc: string;
  readonly metrics?: string;
  stop(): Promise<void>;
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
    envoy = await startEnvoy({
      grpcPort: app.grpcPort,
      upstreamUrl: opts.upstreamUrl,
      port: opts.port,
      identityHeaders: Object.keys(opts.config.identityHeaders),
    });
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
    async stop() {
      await running.stop();
      await app.stop();
    },
  };
}

/** The one JSON line `stack` prints on stdout when traffic can flow (DESIGN section 3). */
export function readyLine(stack: RunningStack, extra: Record<string, unknown> = {}): string {
  return `${JSON.stringify({ event: 'ready', envoy: stack.envoyUrl, grpc: stack.grpc, metrics: stack.metrics ?? null, ...extra })}\n`;
}
