/**
 * The instrument table: every metric Tollgate exports, with its type, unit and meaning. The
 * `Metrics` class (metrics.ts) decides the labels; this file only declares. Names follow the
 * OpenTelemetry conventions (dots, units as `unit`), which the Prometheus exporter turns into
 * `tollgate_decisions_total`, `tollgate_decision_duration_seconds`, and so on.
 */
import type { Counter, Histogram, Meter, UpDownCounter } from '@opentelemetry/api';

/** Store circuit-breaker states, exported as one 0/1 gauge series each (enum style). */
const BREAKER_STATES = ['closed', 'half-open', 'open'] as const;
export type BreakerStateLabel = (typeof BREAKER_STATES)[number];

/** Sub-millisecond to one second: a decision is usually well under a millisecond. */
const LATENCY_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1,
];

/** The buckets the GenAI semantic conventions recommend for `gen_ai.client.token.usage`. */
const TOKEN_BUCKETS = [
  1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
];

export interface Instruments {
  readonly decisions: Counter;
  readonly decisionLatency: Histogram;
  readonly stageLatency: Histogram;
  readonly shadowDenials: Counter;
  readonly rateLimitHits: Counter;
  readonly tokenUsage: Histogram;
  readonly tokens: Counter;
  readonly cost: Counter;
  readonly reservations: UpDownCounter;
  readonly reservedTokens: UpDownCounter;
  readonly storeErrors: Counter;
  readonly storeFallbacks: Counter;
  readonly configReloads: Counter;
}

/** What the observable instruments read when scraped. */
export interface Observed {
  breaker(): BreakerStateLabel | undefined;
  budgets(): ReadonlyMap<string, { readonly used: number; readonly limit: number }>;
  jwks(): readonly { name: string; refreshes: number; failures: number; keys: number }[];
}

export function defineInstruments(meter: Meter, observed: Observed): Instruments {
  const latency = (name: string, description: string): Histogram =>
    meter.createHistogram(name, {
      description,
      unit: 's',
      advice: { explicitBucketBoundaries: LATENCY_BUCKETS },
    });

  meter
    .createObservableGauge('tollgate.store.breaker.state', {
      description: 'Circuit breaker of the shared store: 1 for the current state, 0 for the others',
    })
    .addCallback((result) => {
      const current = observed.breaker();
      if (current === undefined) return;
      for (const state of BREAKER_STATES) result.observe(state === current ? 1 : 0, { state });
    });
  meter
    .createObservableGauge('tollgate.budget.used', {
      description: 'Tokens used in the current period of each budget, as of its last settlement',
      unit: '{token}',
    })
    .addCallback((result) => {
      for (const [budget, level] of observed.budgets()) result.observe(level.used, { budget });
    });
  meter
    .createObservableGauge('tollgate.budget.remaining', {
      description: 'Tokens left in the current period of each budget, as of its last settlement',
      unit: '{token}',
    })
    .addCallback((result) => {
      for (const [budget, level] of observed.budgets())
        result.observe(Math.max(0, level.limit - level.used), { budget });
    });
  meter
    .createObservableCounter('tollgate.jwks.refreshes', {
      description: 'Successful JWKS fetches per identity provider',
    })
    .addCallback((result) => {
      for (const p of observed.jwks()) result.observe(p.refreshes, { provider: p.name });
    });
  meter
    .createObservableCounter('tollgate.jwks.failures', {
      description: 'Failed discovery or JWKS fetches per identity provider',
    })
    .addCallback((result) => {
      for (const p of observed.jwks()) result.observe(p.failures, { provider: p.name });
    });
  meter
    .createObservableGauge('tollgate.jwks.keys', {
      description: 'Usable signing keys cached per identity provider',
    })
    .addCallback((result) => {
      for (const p of observed.jwks()) result.observe(p.keys, { provider: p.name });
    });

  return {
    decisions: meter.createCounter('tollgate.decisions', {
      description: 'ext_authz decisions by result and reason',
    }),
    decisionLatency: latency('tollgate.decision.duration', 'Time to decide one Check request'),
    stageLatency: latency(
      'tollgate.decision.stage.duration',
      'Time spent in one pipeline stage of a Check request',
    ),
    shadowDenials: meter.createCounter('tollgate.policy.shadow_denials', {
      description: 'Allowed requests that a shadow rule or shadow-mode policy would have denied',
    }),
    rateLimitHits: meter.createCounter('tollgate.ratelimit.hits', {
      description: 'Rate-limit outcomes per matching limit: allowed, limited or unavailable',
    }),
    tokenUsage: meter.createHistogram('gen_ai.client.token.usage', {
      description: 'Tokens used per request (GenAI semantic conventions)',
      unit: '{token}',
      advice: { explicitBucketBoundaries: TOKEN_BUCKETS },
    }),
    tokens: meter.createCounter('tollgate.usage.tokens', {
      description: 'Tokens charged, by token type and by source: provider-reported or estimated',
      unit: '{token}',
    }),
    // Exported as `tollgate_cost_usd_total`: a sum in USD for dashboards. The budgets count
    // exact integer micro-dollars; this float total only feeds graphs.
    cost: meter.createCounter('tollgate.cost.usd', {
      description: 'What settled requests cost at the configured prices, in USD, by model and source',
      unit: 'usd',
    }),
    reservations: meter.createUpDownCounter('tollgate.budget.reservations', {
      description: 'Budget reservations made at admission and not yet settled or released',
    }),
    reservedTokens: meter.createUpDownCounter('tollgate.budget.reserved', {
      description: 'Tokens held by outstanding reservations, per budget',
      unit: '{token}',
    }),
    storeErrors: meter.createCounter('tollgate.store.errors', {
      description: 'Failed or timed-out calls to the shared counter store (Redis)',
    }),
    storeFallbacks: meter.createCounter('tollgate.store.fallbacks', {
      description: 'Store calls answered by the onUnavailable policy instead of Redis',
    }),
    configReloads: meter.createCounter('tollgate.config.reloads', {
      description: 'Configuration file changes: success (applied) or rejected (last good kept)',
    }),
  };
}
