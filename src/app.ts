/**
 * Composition root: config → credentials → identity → the Check's steps → servers.
 * `start()` returns a running app; `stop()` drains it. A reload builds a new Generation and
 * swaps it in at once (Live), so a request in flight finishes with the configuration it
 * started with, and every callback reads the generation in force when it runs.
 */
import { DEFAULT_DAILY_USAGE, type Config } from './config/schema.js';
import { resolveMetricsToken, resolveSecret } from './config/secrets.js';
import { BudgetLedger } from './budgets/ledger.js';
import { exchangeFactory } from './response/flow.js';
import { BASE_PROCESSING_MODE } from './response/mode.js';
import { Authenticator } from './identity/verify.js';

import { BudgetPlanner } from './budgets/planner.js';
import { AuthorizeStep } from './check/authorize.js';
import type { IdentityVerifier } from './check/authenticate.js';
import { CheckFlow, checkSteps, type CheckParts } from './check/flow.js';
import { Responder, type UpstreamCredentials } from './check/respond.js';
import { RateLimitPlanner, type RateLimitOptions } from './limits/rate-limit.js';
import type { PolicyObserver } from './policy/rules.js';
import type { Store } from './store/store.js';
import { createStore, type CreatedStore } from './store/index.js';
import { applyHeapGrowing } from './server/heap.js';
import { startGrpcServer } from './server/grpc.js';
import { requireToken, startMetricsServer, type MetricsServer } from './server/metrics-http.js';
import { budgetAnswer, budgetRoute, type BudgetAnswer, type BudgetRouteDeps } from './budgets/view.js';
import { countersAnswer, countersRoute, type CountersRouteDeps } from './server/counters.js';
import { InFlight, retryUntilReady, splitGrace, within } from './server/lifecycle.js';
import { Metrics } from './telemetry/metrics.js';
import type { PortalServer } from './portal/server.js';
import type { Logger } from './telemetry/logger.js';
import { tracingFromEnv, type Tracing } from './telemetry/tracing.js';

/**
 * How long after an allowed Check its ext_proc stream may still open. Envoy opens it at once
 * (the next filter of the same request); a generous bound costs only shutdown time.
 */
const HANDOFF_GAP_MS = 1000;

/** Whether a Check was allowed within the last `gapMs`. */
class RecentAllows {
  private last = -Infinity;
  private readonly gapMs: number;

  constructor(gapMs: number) {
    this.gapMs = gapMs;
  }

  mark(): void {
    this.last = performance.now();
  }

  pending(): boolean {
    return performance.now() - this.last < this.gapMs;
  }
}

/** While some provider's keys were never fetched, retry this often (health stays NOT_SERVING). */
const KEY_RETRY_MS = 2000;

export interface AppOptions {
  readonly config: Config;
  readonly logger: Logger;
  /** Overrides `server.grpc` (the stack uses it to pick a loopback port). */
  readonly grpcAddress?: string;
  /** Overrides `server.metrics`; `null` disables the endpoint. */
  readonly metricsAddress?: string | null;
  /** Span export; default as the `OTEL_*` environment variables say (off when they say nothing). */
  readonly tracing?: Tracing;
  /** The line logged once serving (default `tollgate started`; a cluster worker says `worker started`). */
  readonly startedMessage?: string;
}

export async function resolveCredentials(config: Config): Promise<UpstreamCredentials> {
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

/** What `checkParts` needs besides the configuration. */
export interface CheckPartsOptions {
  readonly verifier: IdentityVerifier;
  readonly store: Store;
  readonly credentials: UpstreamCredentials;
  readonly onRateLimit?: RateLimitOptions['onOutcome'];
  readonly onReservation?: CheckParts['onReservation'];
  /** Told of each authorization rule evaluated (`tollgate explain`). */
  readonly observePolicy?: PolicyObserver;
}

/**
 * The parts of the Check for one configuration: the one place they are built, for the live
 * sidecar and for `tollgate explain` / `test` / `diff`, so those run exactly the live Check.
 */
export function checkParts(config: Config, opts: CheckPartsOptions): CheckParts & { readonly authorize: AuthorizeStep } {
  const authorize = new AuthorizeStep(config.authorization, {
    budgets: config.tokenBudgets.length > 0,
    ...(opts.observePolicy !== undefined ? { observe: opts.observePolicy } : {}),
  });
  return {
    verifier: opts.verifier,
    authorize,
    // Rate limits and budgets are counted together, in one store call: a request the
    // policy refuses never counts, and one refused by either counts in neither.
    planners: [
      new RateLimitPlanner(config, opts.onRateLimit !== undefined ? { onOutcome: opts.onRateLimit } : {}),
      new BudgetPlanner(config),
    ],
    store: opts.store,
    responder: new Responder(config, opts.credentials),
    // `GET /v1/tollgate/whoami`, read from the same rules and store (counters only read).
    ...(config.server.whoami !== false
      ? { me: { config, allowedModels: (identity, candidates) => authorize.allowedModels(identity, candidates), counters: opts.store } }
      : {}),
    ...(opts.onReservation !== undefined ? { onReservation: opts.onReservation } : {}),
  };
}

/** Everything that is rebuilt when the configuration changes. */
interface Generation {
  readonly check: CheckFlow;
  readonly authenticator: Authenticator;
  /**
   * Keys and verified-token cache outlive reloads too: a new Authenticator is made only when
   * `authentication:` changes, so a reload during an IdP outage keeps the cached keys serving.
   */
  readonly authKey: string;
  /** Counters outlive reloads; a new store is made only when `store:` itself changes. */
  readonly store: CreatedStore;
  readonly storeKey: string;
  /** Settles budgets in this generation's store (ext_proc calls it when a response ends). */
  readonly ledger: BudgetLedger;
  /** This generation's rules, also used by ext_proc to filter `GET /v1/models` per caller. */
  readonly authorize: AuthorizeStep;
  /** Made once in start() and handed on. */
  readonly tracing: Tracing;
  /** When the last allow was, for shutdown; made once and handed on. */
  readonly recent: RecentAllows;
  /** `server.metricsToken` as read for this generation: `/budget` and `/counters` need it. */
  readonly metricsToken: string | undefined;
}

/** What stop() must wait for or shut down besides the servers. */
interface Lifecycle {
  readonly settling: InFlight;
  readonly tracing: Tracing;
  readonly keyRetry: { stop(): void };
}

/**
 * The generation in force. Callbacks handed to the servers before the App exists read it
 * through here, so a reload needs to tell no one.
 */
class Live {
  private value: Generation | undefined;

  get current(): Generation {
    if (this.value === undefined) throw new Error('the app is not built yet');
    return this.value;
  }

  set current(generation: Generation) {
    this.value = generation;
  }
}

/** `/budget` reads the live configuration and store. */
function budgetDeps(live: Live): BudgetRouteDeps {
  return { config: () => live.current.check.config, store: () => live.current.store.store };
}

function countersDeps(live: Live): CountersRouteDeps {
  return { config: () => live.current.check.config, counters: () => live.current.store.counters };
}

export class App {
  private readonly live: Live;
  readonly logger: Logger;
  readonly metrics: Metrics;
  private readonly grpc: Awaited<ReturnType<typeof startGrpcServer>>;
  private readonly metricsServer: MetricsServer | undefined;
  private readonly lifecycle: Lifecycle;
  private portal: PortalServer | undefined;

  private constructor(
    live: Live,
    logger: Logger,
    metrics: Metrics,
    grpc: Awaited<ReturnType<typeof startGrpcServer>>,
    metricsServer: MetricsServer | undefined,
    lifecycle: Lifecycle,
  ) {
    this.lifecycle = lifecycle;
    this.live = live;
    this.logger = logger;
    this.metrics = metrics;
    this.grpc = grpc;
    this.metricsServer = metricsServer;
  }

  static async start(opts: AppOptions): Promise<App> {
    applyHeapGrowing(opts.config.server.heapGrowingPercent);
    const metrics = new Metrics(opts.config.metrics);
    const tracing = opts.tracing ?? (await tracingFromEnv());
    // Settlements still running when SIGTERM comes are waited for (stop()), so usage is charged.
    const settling = new InFlight();
    const live = new Live();
    // An allow is followed at once by the same request's ext_proc stream (on this process or
    // another): shutdown waits that long after the last one before it stops taking streams.
    const recent = new RecentAllows(HANDOFF_GAP_MS);
    live.current = await App.build(opts.config, opts.logger, metrics, undefined, tracing, recent);
    // No tokenizer is loaded here: Checks estimate by bytes, and a rank table (about 15 MiB,
    // ~150 ms to build) is built on the first response that needs counting (metering/bpe.ts).
    const grpc = await startGrpcServer({
      address: opts.grpcAddress ?? opts.config.server.grpc,
      maxRequestBytes: opts.config.server.maxRequestBytes,
      authorize: (req) => live.current.check.decide(req),
      // ext_proc: meters each response and settles its hand-off with the live ledger.
      newExchange: exchangeFactory({
        ledger: {
          settle: (h, usage, info) => settling.track(live.current.ledger.settle(h, usage, info)),
          release: (h, reason, providerId) => settling.track(live.current.ledger.release(h, reason, providerId)),
        },
        modelPolicy: () => live.current.authorize,
        onError: (err) => opts.logger.warn({ err }, 'metering failed; the response passed unmetered'),
      }),
      // Must equal the mode in Envoy's bootstrap (src/stack/run.ts passes the same constant).
      processingMode: BASE_PROCESSING_MODE,
      health: { ready: () => live.current.authenticator.ready },
      // A request admitted just before SIGTERM still needs its ext_proc stream to be charged.
      pendingWork: () => (recent.pending() ? 1 : 0),
    });
    const metricsAddress = opts.metricsAddress === undefined ? opts.config.server.metrics : opts.metricsAddress;
    const metricsServer = metricsAddress
      ? await startMetricsServer(metricsAddress, metrics, {
          '/budget': requireToken(() => live.current.metricsToken, budgetRoute(budgetDeps(live))),
          '/counters': requireToken(() => live.current.metricsToken, countersRoute(countersDeps(live))),
        })
      : undefined;
    // Health reports SERVING only once every provider's keys were fetched; keep trying until then.
    const keyRetry = retryUntilReady({
      ready: () => live.current.authenticator.ready,
      fetch: () => live.current.authenticator.prefetch(),
      intervalMs: KEY_RETRY_MS,
    });
    const app = new App(live, opts.logger, metrics, grpc, metricsServer, { settling, tracing, keyRetry });
    app.portal = await App.startPortal(opts.config, live, opts.logger);
    metrics.observeBreaker(() => live.current.store.guarded?.stats().state);
    metrics.observeJwks(live.current.authenticator);
    opts.logger.info(
      { grpc: grpc.address, metrics: metricsServer?.url, ...(app.portal !== undefined ? { portal: app.portal.url } : {}) },
      opts.startedMessage ?? 'tollgate started',
    );
    return app;
  }

  /**
   * The portal's listener (`portal:`), started once: its address and client are read at start;
   * the verifier, rules and store it reads come from the live generation (a reload applies).
   */
  private static async startPortal(config: Config, live: Live, logger: Logger): Promise<PortalServer | undefined> {
    const portal = config.portal;
    if (portal === undefined) return undefined;
    const provider = config.authentication.find((p) => p.name === portal.provider);
    if (provider === undefined) throw new Error(`portal.provider ${portal.provider} is not a configured provider`);
    const secret = portal.clientSecret !== undefined ? await resolveSecret(portal.clientSecret) : undefined;
    // Loaded only with a portal: the OpenID client and the pages are memory a sidecar without
    // one does not carry (docs/benchmarks.md).
    const [{ PortalClient }, { startPortalServer }] = await Promise.all([
      import('./portal/oidc.js'),
      import('./portal/server.js'),
    ]);
    return startPortalServer({
      config: portal,
      client: new PortalClient(portal, provider.issuer, secret),
      verifier: () => live.current.authenticator,
      me: () => ({
        config: live.current.check.config,
        allowedModels: (identity, candidates) => live.current.authorize.allowedModels(identity, candidates),
        counters: live.current.store.store,
      }),
      usage: () => ({ book: live.current.store.usage, days: live.current.check.config.metering.dailyUsage ?? DEFAULT_DAILY_USAGE }),
      logger,
    });
  }

  private static async build(
    config: Config,
    logger: Logger,
    metrics: Metrics,
    previous: Generation | undefined,
    tracing: Tracing | undefined = previous?.tracing,
    recent: RecentAllows | undefined = previous?.recent,
  ): Promise<Generation> {
    if (tracing === undefined || recent === undefined) throw new Error('App.build needs the shared tracing');
    // Read first: a token that cannot be read (or is too weak) refuses the start or the reload.
    const metricsToken = await resolveMetricsToken(config);
    const authKey = JSON.stringify(config.authentication);
    const authReused = previous !== undefined && previous.authKey === authKey;
    const authenticator = authReused ? previous.authenticator : new Authenticator(config.authentication, { logger });
    // Keys are fetched before the first request, so it does not pay for discovery.
    if (!authReused) await authenticator.prefetch();
    const storeKey = JSON.stringify(config.store);
    const reused = previous !== undefined && previous.storeKey === storeKey;
    const policy = config.store.redis?.onUnavailable;
    const store = reused
      ? previous.store
      : await createStore(config.store, {
          // Says what an outage means for requests, since `open` counts nothing (DESIGN 1.3).
          onStateChange: (state) =>
            logger.warn({ store: 'redis', state, onUnavailable: policy }, `store circuit ${state}`),
          onError: (_err, timedOut) => metrics.recordStoreError(timedOut),
          onFallback: (p) => metrics.recordStoreFallback(p),
        });
    // The client refuses commands until connected (no offline queue), so give it a moment
    // before the first request; a Redis that stays down is the onUnavailable policy's job.
    if (!reused && store.redis) {
      await store.redis.ready(2000).catch((err: unknown) =>
        logger.warn({ err, store: 'redis', onUnavailable: policy }, 'Redis not reachable at start-up'),
      );
    }
    const parts = checkParts(config, {
      verifier: authenticator,
      store: store.store,
      credentials: await resolveCredentials(config),
      onRateLimit: (limit, result) => metrics.recordRateLimit(limit, result),
      onReservation: (reservation) => metrics.reservationOpened(reservation),
    });
    const { authorize } = parts;
    const ledger = new BudgetLedger(config, store.store, {
      logger,
      metrics,
      usage: { book: store.usage, days: config.metering.dailyUsage ?? DEFAULT_DAILY_USAGE },
    });
    const check = new CheckFlow({ config, steps: checkSteps(parts), logger, tracing });
    check.onDecision((decision, latencyMs) => metrics.recordDecision(decision, latencyMs));
    check.onStage((stage, latencyMs, outcome) => metrics.recordStage(stage, latencyMs, outcome));
    check.onDecision((decision) => {
      if (decision.allow !== undefined) recent.mark();
    });
    return { check, authenticator, authKey, store, storeKey, ledger, authorize, tracing, recent, metricsToken };
  }

  get config(): Config {
    return this.live.current.check.config;
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

  /** The portal listener's URL (`portal.listen`), when the portal is on. */
  get portalUrl(): string | undefined {
    return this.portal?.url;
  }


  /** The ledger of the live store: settle or release each admission once its response ends. */
  get ledger(): BudgetLedger {
    return this.live.current.ledger;
  }

  /** What `GET <url>` (`/budget?…`) answers, without HTTP: a cluster worker hands it to the primary. */
  budget(url: string): Promise<BudgetAnswer> {
    return budgetAnswer(budgetDeps(this.live), url);
  }

  /** What `GET <url>` (`/counters?…`) answers, without HTTP: a cluster worker hands it to the primary. */
  counters(url: string): Promise<BudgetAnswer> {
    return countersAnswer(countersDeps(this.live), url);
  }

  /** Swap in a new configuration; requests already deciding finish on the old one. */
  async reload(config: Config): Promise<void> {
    const previous = this.live.current;
    const next = await App.build(config, this.logger, this.metrics, previous);
    this.live.current = next;
    applyHeapGrowing(config.server.heapGrowingPercent);
    this.metrics.configure(config.metrics);
    this.metrics.observeJwks(next.authenticator);
    if (previous.store !== next.store) await previous.store.store.close();
    this.logger.info('configuration reloaded');
  }

  /**
   * Health turns NOT_SERVING at once; Check calls and ext_proc streams in flight finish; the
   * settlements they start are waited for; then everything closes. Bounded by `graceMs` (the
   * default is `server.shutdownGraceSeconds`): what is still open after that is cut.
   */
  async stop(graceMs = this.config.server.shutdownGraceSeconds * 1000): Promise<void> {
    const deadline = Date.now() + graceMs;
    const { drainMs } = splitGrace(graceMs);
    this.lifecycle.keyRetry.stop();
    await this.grpc.shutdown(drainMs);
    // A stream cut at the deadline settles as aborted (estimated): still charged.
    if (!(await this.lifecycle.settling.drain(deadline - Date.now()))) {
      this.logger.error({ pending: this.lifecycle.settling.size }, 'shutdown grace ran out with usage settlements pending');
    }
    await this.metricsServer?.close();
    await this.portal?.close();
    await this.live.current.store.store.close();
    await within(this.lifecycle.tracing.shutdown(), Math.max(200, deadline - Date.now()));
  }
}
