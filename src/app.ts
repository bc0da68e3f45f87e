/**
 * Composition root: config → credentials → identity → stages → gateway → servers.
 * `start()` returns a running app; `stop()` drains it. Reloads swap the gateway atomically,
 * so a request in flight finishes with the configuration it started with.
 */
import type { Config } from './config/schema.js';
import { resolveSecret } from './config/secrets.js';
import { Authenticator } from './identity/verify.js';
import { AuthorizeStage } from './pipeline/authorize.js';
import { Gateway } from './pipeline/pipeline.js';
import { Responder, type UpstreamCredentials } from './pipeline/respond.js';
import { RateLimitStage } from './pipeline/rate-limit.js';
import type { Stage } from './pipeline/stage.js';
import { createStore, type CreatedStore } from './store/index.js';
import { startGrpcServer } from './server/grpc.js';
import { startMetricsServer, type MetricsServer } from './server/metrics-http.js';
import { Metrics } from './telemetry/metrics.js';
import type { Logger } from './telemetry/logger.js';

export interface AppOptions {
  readonly config: Config;
  readonly logger: Logger;
  /** Overrides `server.grpc` (the stack uses it to pick a loopback port). */
  readonly grpcAddress?: string;
  /** Overrides `server.metrics`; `null` disables the endpoint. */
  readonly metricsAddress?: string | null;
}

async function resolveCredentials(config: Config): Promise<UpstreamCredentials> {
  const tenants: Record<string, { apiKey: string; project?: string; organization?: string }> = {};
  for (const [name, t] of Object.entries(config.upstream.tenants)) {
    tenants[name] = {
      apiKey: await resolveSecret(t.apiKey),
      ...(t.project !== undefined ? { project: t.project } : {}),
      ...(t.organization !== undefined ? { organization: t.organization } : {}),
    };
  }
  return {
    ...(config.upstream.apiKey !== undefined ? { apiKey: await resolveSecret(config.upstream.apiKey) } : {}),
    tenants,
  };
}

/** Everything that is rebuilt when the configuration changes. */
interface Generation {
  readonly gateway: Gateway;
  readonly authenticator: Authenticator;
  /** Counters outlive reloads; a new store is made only when `store:` itself changes. */
  readonly store: CreatedStore;
  readonly storeKey: string;
}

export class App {
  private generation: Generation;
  readonly logger: Logger;
  readonly metrics: Metrics;
  private readonly grpc: Awaited<ReturnType<typeof startGrpcServer>>;
  private readonly metricsServer: MetricsServer | undefined;

  private constructor(
    generation: Generation,
    logger: Logger,
    metrics: Metrics,
    grpc: Awaited<ReturnType<typeof startGrpcServer>>,
    metricsServer: MetricsServer | undefined,
  ) {
    this.generation = generation;
    this.logger = logger;
    this.metrics = metrics;
    this.grpc = grpc;
    this.metricsServer = metricsServer;
  }

  static async start(opts: AppOptions): Promise<App> {
    const metrics = new Metrics();
    const generation = await App.build(opts.config, opts.logger, metrics, undefined);
    let app: App | undefined;
    const grpc = await startGrpcServer({
      address: opts.grpcAddress ?? opts.config.server.grpc,
      authorize: (req) => (app ? app.generation.gateway.decide(req) : generation.gateway.decide(req)),
      newExchange: () => ({}),
      health: { ready: () => (app ? app.generation.authenticator.ready : false) },
    });
    const metricsAddress = opts.metricsAddress === undefined ? opts.config.server.metrics : opts.metricsAddress;
    const metricsServer = metricsAddress ? await startMetricsServer(metricsAddress, metrics) : undefined;
    app = new App(generation, opts.logger, metrics, grpc, metricsServer);
    opts.logger.info({ grpc: grpc.address, metrics: metricsServer?.url }, 'tollgate started');
    return app;
  }

  private static async build(
    config: Config,
    logger: Logger,
    metrics: Metrics,
    previous: Generation | undefined,
  ): Promise<Generation> {
    const authenticator = new Authenticator(config.authentication, { logger });
    // Keys are fetched before the first request, so it does not pay for discovery.
    await authenticator.prefetch();
    const storeKey = JSON.stringify(config.store);
    const store =
      previous && previous.storeKey === storeKey
        ? previous.store
        : createStore(config.store, {
            onStateChange: (state) => logger.warn({ store: 'redis', state }, `store circuit ${state}`),
          });
    const stages: Stage[] = [new AuthorizeStage(config.authorization), new RateLimitStage(config, store.store)];
    const gateway = new Gateway({
      config,
      verifier: authenticator,
      stages,
      responder: new Responder(config, await resolveCredentials(config)),
      logger,
    });
    gateway.onDecision((decision, latencyMs) => metrics.recordDecision(decision, latencyMs));
    return { gateway, authenticator, store, storeKey };
  }

  get config(): Config {
    return this.generation.gateway.config;
  }

  get grpcPort(): number {
    return this.grpc.port;
  }

  get grpcAddress(): string {
    return this.grpc.address;
  }

  get metricsUrl(): string | undefined {
    return this.metricsServer?.url;
  }

  /** Swap in a new configuration; requests already deciding finish on the old one. */
  async reload(config: Config): Promise<void> {
    const previous = this.generation;
    this.generation = await App.build(config, this.logger, this.metrics, previous);
    if (previous.store !== this.generation.store) await previous.store.store.close();
    this.logger.info('configuration reloaded');
  }

  async stop(graceMs = this.config.server.shutdownGraceSeconds * 1000): Promise<void> {
    await this.grpc.shutdown(graceMs);
    await this.metricsServer?.close();
    await this.generation.store.store.close();
  }
}
