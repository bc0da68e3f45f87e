/**
 * OpenTelemetry instruments, exported in Prometheus text format by `server/metrics-http.ts`.
 * docs/observability.md lists every series. Labels are bounded: reasons and results come from
 * closed unions; rule, limit, budget and provider names from configuration; tenants, models and
 * (only with `metrics.perUserLabels`) users are capped by `metrics.maxLabelValues`.
 */
import type { Attributes, Histogram } from '@opentelemetry/api';
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import type { MetricsConfig } from '../config/schema.js';
import { decisionKind, type Decision } from '../domain/decision.js';
import { BoundedLabel, DEFAULT_MAX_LABEL_VALUES } from './labels.js';
import { defineInstruments, type BreakerStateLabel, type Instruments } from './instruments.js';
import type { StageOutcome } from './tracing.js';

export { BoundedLabel } from './labels.js';
export type { BreakerStateLabel } from './instruments.js';

/** One settled request's tokens, as the ledger reports them. */
export interface UsageRecord {
  /** GenAI `gen_ai.operation.name`: chat, text_completion, embeddings, … */
  readonly operation: string;
  readonly model: string | undefined;
  readonly tenant: string | undefined;
  readonly user: string;
  readonly source: 'provider' | 'estimated';
  readonly inputTokens: number;
  readonly outputTokens: number;
  /** What the usage cost in micro-dollars, when the model is priced. */
  readonly costMicros?: number;
}

/** Tokens a reservation holds, per budget (same order as `names`). */
export interface ReservationRecord {
  readonly names: readonly string[];
  readonly reserved: readonly number[];
  /**
   * Per budget; `usd` amounts are micro-dollars, not tokens, and a `slot` is a concurrency
   * limit's request in flight, not a budget. Absent = all tokens.
   */
  readonly units?: readonly ('tokens' | 'usd' | 'slot')[];
}

/** What the ledger needs: usage, budget levels, reservations closed. */
export type UsageMetrics = Pick<Metrics, 'recordUsage' | 'recordBudget' | 'reservationClosed'>;

/** Per-provider JWKS counters as the Authenticator reports them. */
export interface JwksStats {
  readonly name: string;
  readonly refreshes: number;
  readonly failures: number;
  readonly keys: number;
}

/** Anything that reports per-provider JWKS counters (the Authenticator does). */
export interface JwksSource {
  readonly stats: { readonly providers: readonly JwksStats[] };
}

export class Metrics {
  readonly exporter: PrometheusExporter;
  private readonly provider: MeterProvider;
  private readonly i: Instruments;
  readonly tenants = new BoundedLabel(DEFAULT_MAX_LABEL_VALUES);
  readonly models = new BoundedLabel(DEFAULT_MAX_LABEL_VALUES);
  private readonly users = new BoundedLabel(DEFAULT_MAX_LABEL_VALUES);
  /** Rule names come from configuration; the cap only matters across many reloads. */
  private readonly rules = new BoundedLabel(200);
  private readonly budgets = new BoundedLabel(1000);
  private perUserLabels = false;
  /** Last known level of each budget (updated on settlement). */
  private readonly budgetLevels = new Map<string, { used: number; limit: number }>();
  private breakerState: () => BreakerStateLabel | undefined = () => undefined;
  private jwksSource: JwksSource | undefined;
  /** Counts of authenticators replaced by a reload, so the exported counters never go back. */
  private readonly jwksBase = new Map<string, { refreshes: number; failures: number }>();

  constructor(config?: MetricsConfig) {
    this.exporter = new PrometheusExporter({ preventServerStart: true });
    this.provider = new MeterProvider({ readers: [this.exporter] });
    this.i = defineInstruments(this.provider.getMeter('tollgate'), {
      breaker: () => this.breakerState(),
      budgets: () => this.budgetLevels,
      jwks: () => this.jwksTotals(),
    });
    if (config !== undefined) this.configure(config);
  }

  /** The GenAI histogram, for callers that record it themselves. */
  get tokenUsage(): Histogram {
    return this.i.tokenUsage;
  }

  /** Applies `metrics:` (at start and on every reload). */
  configure(config: MetricsConfig | undefined): void {
    const cap = config?.maxLabelValues ?? DEFAULT_MAX_LABEL_VALUES;
    for (const label of [this.tenants, this.models, this.users]) label.resize(cap);
    this.perUserLabels = config?.perUserLabels ?? false;
  }

  /** Rate-limit outcomes: `limit` is a configured name (bounded), `result` a closed union. */
  recordRateLimit(limit: string, result: 'allowed' | 'limited' | 'unavailable'): void {
    this.i.rateLimitHits.add(1, { limit, result });
  }

  /** A failed or timed-out call to the shared store (Redis). */
  recordStoreError(timedOut: boolean): void {
    this.i.storeErrors.add(1, { kind: timedOut ? 'timeout' : 'error' });
  }

  /** A call answered by the `onUnavailable` policy instead of the shared store. */
  recordStoreFallback(policy: 'closed' | 'open' | 'local'): void {
    this.i.storeFallbacks.add(1, { policy });
  }

  /** Where the breaker gauge reads its state; the app points it at the live store. */
  observeBreaker(read: () => BreakerStateLabel | undefined): void {
    this.breakerState = read;
  }

  /**
   * Where the JWKS series read their counters (the live Authenticator). When a reload replaces
   * it, the old one's counts become a base, so the exported totals never go back.
   */
  observeJwks(source: JwksSource): void {
    if (source === this.jwksSource) return;
    for (const p of this.jwksSource?.stats.providers ?? []) {
      const base = this.jwksBase.get(p.name) ?? { refreshes: 0, failures: 0 };
      this.jwksBase.set(p.name, {
        refreshes: base.refreshes + p.refreshes,
        failures: base.failures + p.failures,
      });
    }
    this.jwksSource = source;
  }

  /** A configuration change applied (`success`) or refused with the last good one kept (`rejected`). */
  recordReload(result: 'success' | 'rejected'): void {
    this.i.configReloads.add(1, { result });
  }

  recordDecision(decision: Decision, latencyMs: number): void {
    const shadow = decision.allow?.shadowDenied;
    if (shadow !== undefined) {
      this.i.shadowDenials.add(1, { rule: this.rules.value(shadow.rule), reason: shadow.reason });
    }
    const attrs: Attributes = decision.deny
      ? { result: decisionKind(decision), reason: decision.deny.reason }
      : { result: 'allow', reason: 'allowed' };
    const identity = decision.allow ? decision.allow.identity : decision.identity;
    this.i.decisions.add(1, { ...attrs, ...this.userLabel(identity?.user) });
    this.i.decisionLatency.record(latencyMs / 1000, { result: attrs['result'] as string });
  }

  /** Time one pipeline stage took (authenticate, authorize, rate-limit, budget-reserve). */
  recordStage(stage: string, latencyMs: number, outcome: StageOutcome): void {
    this.i.stageLatency.record(latencyMs / 1000, { stage, outcome });
  }

  /** A settled request's tokens: the GenAI histogram and the per-source token counter. */
  recordUsage(u: UsageRecord): void {
    const attrs: Attributes = {
      'gen_ai.operation.name': u.operation,
      'gen_ai.provider.name': 'openai',
      'gen_ai.request.model': this.models.value(u.model),
      'tollgate.tenant': this.tenants.value(u.tenant),
      'tollgate.usage.source': u.source,
      ...this.userLabel(u.user),
    };
    this.i.tokenUsage.record(u.inputTokens, { ...attrs, 'gen_ai.token.type': 'input' });
    this.i.tokenUsage.record(u.outputTokens, { ...attrs, 'gen_ai.token.type': 'output' });
    const bySource = { 'tollgate.usage.source': u.source };
    this.i.tokens.add(u.inputTokens, { ...bySource, 'gen_ai.token.type': 'input' });
    this.i.tokens.add(u.outputTokens, { ...bySource, 'gen_ai.token.type': 'output' });
    if (u.costMicros !== undefined) this.i.cost.add(u.costMicros / 1_000_000, attrs);
  }

  /** A budget's level after a settlement (the used/remaining gauges report the last one). */
  recordBudget(name: string, used: number, limit: number): void {
    this.budgetLevels.set(this.budgets.value(name), { used, limit });
  }

  /** A reservation made at admission; paired with exactly one `reservationClosed`. */
  reservationOpened(r: ReservationRecord): void {
    this.reservation(r, 1);
  }

  /** The reservation was settled or released. */
  reservationClosed(r: ReservationRecord): void {
    this.reservation(r, -1);
  }

  private reservation(r: ReservationRecord, sign: 1 | -1): void {
    // Concurrency slots ride on the reservation but are no budget's.
    if (!r.names.some((_, k) => r.units?.[k] !== 'slot')) return;
    this.i.reservations.add(sign);
    r.names.forEach((name, k) => {
      if (r.units?.[k] === 'usd' || r.units?.[k] === 'slot') return;
      const tokens = r.reserved[k] ?? 0;
      if (tokens > 0)
        this.i.reservedTokens.add(sign * tokens, { budget: this.budgets.value(name) });
    });
  }

  private userLabel(user: string | undefined): Attributes {
    return this.perUserLabels ? { 'tollgate.user': this.users.value(user) } : {};
  }

  private jwksTotals(): JwksStats[] {
    const live = new Map((this.jwksSource?.stats.providers ?? []).map((p) => [p.name, p]));
    const names = new Set([...this.jwksBase.keys(), ...live.keys()]);
    return [...names].map((name) => {
      const base = this.jwksBase.get(name) ?? { refreshes: 0, failures: 0 };
      const now = live.get(name);
      return {
        name,
        refreshes: base.refreshes + (now?.refreshes ?? 0),
        failures: base.failures + (now?.failures ?? 0),
        keys: now?.keys ?? 0,
      };
    });
  }

  /** The Prometheus text a scrape would get (a worker hands it to the primary, which merges). */
  async text(): Promise<string> {
    const { resourceMetrics } = await this.exporter.collect();
    return new PrometheusSerializer().serialize(resourceMetrics);
  }

  async shutdown(): Promise<void> {
    await this.provider.shutdown();
  }
}
