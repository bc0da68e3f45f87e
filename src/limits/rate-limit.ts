/**
 * Request rate limits (`rateLimits:`): every matching entry applies. This planner decides
 * which windows a request hits and words the outcome (headers, 429); the admission stage
 * (admit.ts) hits them in the request's one all-or-nothing store call, together with its token
 * budgets, so a refused request consumes from no limit.
 *
 * Buckets. A limit's `key` (`user`, `tenant`, `groups` or a claim path) names the bucket:
 * `rl:<limit>:<value>`. A list-valued key (`groups`, or a list claim) gives one bucket per
 * value and the request must have room in all of them — a member of two teams draws on both
 * teams' allowances. When the limit's own `match.claims` has globs for that same key, only
 * the values matching them name buckets (a limit on `groups: team-*` keyed by `groups`
 * counts per team, not per "everyone" group). A caller with no value for the key shares one
 * bucket, `rl:<limit>`, with every other such caller: stricter than skipping the limit,
 * which would let a missing claim escape it.
 *
 * Concurrency. A limit with `maxConcurrent` also holds one slot per bucket (`cc:<limit>:<value>`)
 * while the request is in flight. A slot is a reservation of 1 in a counter of `maxConcurrent`
 * that is never charged (store.ts budget semantics): taken in the same all-or-nothing store
 * call, carried to ext_proc in the request's reservation and freed where it is settled or
 * released (end of the response, abort, upstream error, request not forwarded), and otherwise
 * expired by the store after the reservation TTL, so a crashed replica's slots come back on
 * their own.
 */
import { createHash } from 'node:crypto';
import type { Config, RateLimitConfig, RateUnit } from '../config/schema.js';
import { compileGlobs, type GlobMatcher } from '../policy/glob.js';
import { claimValues, compileMatch, type CompiledMatch } from '../policy/match.js';
import type { BudgetItem, WindowHit, WindowState } from '../store/store.js';
import type { Reservation } from '../domain/reservation.js';
import {
  DEFAULT_RESERVATION_TTL_SECONDS,
  nothingToCount,
  type CounterPlan,
  type PlanAnswer,
  type PlanInput,
  type Planner,
  type PlanVerdict,
} from './admit.js';
import { deny } from '../domain/denials.js';
import { formatResetDuration, retryAfterSeconds } from './rate-headers.js';
import type { Identity } from '../domain/identity.js';

export const UNIT_MS: Readonly<Record<RateUnit, number>> = {
  second: 1000,
  minute: 60_000,
  hour: 3_600_000,
  day: 86_400_000,
};

/** Longest encoded bucket value kept verbatim; longer ones are hashed to bound key size. */
export const MAX_VALUE_LENGTH = 128;

/**
 * How long a slot counter's key outlives the newest slot in it: each admission sets the key's
 * expiry to its own slot's plus this, so replicas' clock skew cannot end the key early.
 */
const SLOT_KEY_GRACE_MS = 60_000;

/**
 * `retry-after` of a concurrency refusal: nothing says when a request in flight ends, so the
 * caller is asked to try again shortly (the OpenAI SDKs retry a 429 after it on their own).
 */
export const CONCURRENCY_RETRY_AFTER_SECONDS = 1;

/** Per matching limit and request: admitted, refused by this limit, or store unavailable. */
export type RateLimitResult = 'allowed' | 'limited' | 'unavailable';

export interface RateLimitOptions {
  /**
   * Told once per matching limit per request (metrics). A refused request reports only the
   * limit that refused it; a request refused by a token budget reports nothing, since it
   * consumed nothing from any limit.
   */
  readonly onOutcome?: (limitName: string, result: RateLimitResult) => void;
}

interface CompiledLimit {
  readonly config: RateLimitConfig;
  readonly matches: CompiledMatch;
  /** The limit's own globs on its bucket key, when it has any. */
  readonly keyFilter: GlobMatcher | undefined;
  /** Undefined for a concurrency-only limit. */
  readonly windowMs: number | undefined;
}

/**
 * Store key of one bucket: its window (`rl:`) or its concurrency slots (`cc:`); exported for
 * tests and operators' tooling.
 */
export function bucketKey(limitName: string, value: string | undefined, kind: 'rl' | 'cc' = 'rl'): string {
  const name = encodeURIComponent(limitName);
  if (value === undefined) return `${kind}:${name}`;
  let v = encodeURIComponent(value);
  if (v.length > MAX_VALUE_LENGTH)
    v = `sha256.${createHash('sha256').update(value).digest('base64url')}`;
  return `${kind}:${name}:${v}`;
}

export class RateLimitPlanner implements Planner {
  private readonly limits: readonly CompiledLimit[];
  private readonly onOutcome: RateLimitOptions['onOutcome'];
  /** How long a slot is held when its request is never settled (the reservation TTL). */
  private readonly ttlMs: number;

  /** Compiles every limit's match once; build a new planner when the config changes. */
  constructor(config: Pick<Config, 'rateLimits'> & { readonly metering?: Config['metering'] }, options: RateLimitOptions = {}) {
    this.onOutcome = options.onOutcome;
    this.ttlMs = (config.metering?.reservationTtlSeconds ?? DEFAULT_RESERVATION_TTL_SECONDS) * 1000;
    this.limits = config.rateLimits.map(compileLimit);
  }

  plan(ctx: PlanInput): CounterPlan {
    const windows: WindowHit[] = [];
    const owners: CompiledLimit[] = [];
    const slots: BudgetItem[] = [];
    const slotOwners: CompiledLimit[] = [];
    const input = {
      path: ctx.request.path,
      method: ctx.request.method,
      identity: ctx.identity,
      ...(ctx.model !== undefined ? { model: ctx.model } : {}),
    };
    for (const limit of this.limits) {
      if (!limit.matches(input).matched) continue;
      const { requestsPerUnit, maxConcurrent } = limit.config;
      for (const value of bucketValues(limit, ctx.identity)) {
        if (requestsPerUnit !== undefined && limit.windowMs !== undefined) {
          windows.push({ key: bucketKey(limit.config.name, value), limit: requestsPerUnit, windowMs: limit.windowMs });
          owners.push(limit);
        }
        if (maxConcurrent !== undefined) {
          const key = bucketKey(limit.config.name, value, 'cc');
          const expiresAtMs = ctx.now + this.ttlMs + SLOT_KEY_GRACE_MS;
          slots.push({ key, limit: maxConcurrent, amount: 1, minAmount: 1, expiresAtMs });
          slotOwners.push(limit);
        }
      }
    }
    if (windows.length === 0 && slots.length === 0) return nothingToCount();
    return {
      windows,
      budgets: slots,
      ...(slots.length > 0 ? { reservationTtlMs: this.ttlMs } : {}),
      render: (answer) => this.render(owners, slots, slotOwners, answer),
      unavailable: () => {
        this.report([...owners, ...slotOwners], 'unavailable');
        const message = 'The rate-limit store is unavailable. Please try again shortly.';
        return deny('store_unavailable', message, { headers: { 'retry-after': '1' } });
      },
    };
  }

  private render(
    owners: readonly CompiledLimit[],
    slots: readonly BudgetItem[],
    slotOwners: readonly CompiledLimit[],
    answer: PlanAnswer,
  ): PlanVerdict {
    const refused = answer.refusedBy;
    if (refused?.kind === 'budget') {
      const limit = slotOwners[refused.index]?.config;
      if (limit?.maxConcurrent === undefined) throw new Error('store denied an unknown concurrency slot');
      this.onOutcome?.(limit.name, 'limited');
      return {
        deny: deny(
          'concurrency_limited',
          `Concurrency limit reached for ${limit.name}: Limit ${limit.maxConcurrent} requests in flight. ` +
            'Please try again when one of them has finished.',
          { headers: { 'retry-after': String(CONCURRENCY_RETRY_AFTER_SECONDS) }, rule: limit.name },
        ),
      };
    }
    if (refused !== undefined) {
      const limit = owners[refused.index]?.config;
      const state = answer.windows[refused.index];
      if (limit?.unit === undefined || state === undefined)
        throw new Error('store denied an unknown window');
      this.onOutcome?.(limit.name, 'limited');
      return {
        deny: deny(
          'rate_limited',
          `Rate limit reached for ${limit.name} on requests per ${limit.unit}: Limit ${String(limit.requestsPerUnit)}. ` +
            `Please try again in ${formatResetDuration(state.resetMs)}.`,
          {
            headers: { 'retry-after': retryAfterSeconds(state.resetMs), ...rateHeaders(state) },
            rule: limit.name,
          },
        ),
      };
    }

    this.report([...owners, ...slotOwners], 'allowed');
    const metadata =
      answer.degraded !== undefined ? { rateLimitDegraded: answer.degraded } : undefined;
    // With `open` nothing was counted, so there is no truthful remaining count to advertise.
    const tightest = answer.degraded === 'open' ? undefined : tightestOf(answer.windows);
    // The slots travel to ext_proc with the budgets' reservation (same id), freed with it.
    const reservation: Reservation | undefined =
      slots.length > 0
        ? {
            id: answer.reservationId,
            budgets: slots.map((s) => ({ key: s.key, expiresAtMs: s.expiresAtMs })),
            names: slotOwners.map((o) => o.config.name),
            reserved: answer.reserved,
            units: slots.map(() => 'slot' as const),
          }
        : undefined;
    return {
      ok: {
        ...(tightest !== undefined ? { responseHeaders: rateHeaders(tightest) } : {}),
        ...(metadata !== undefined ? { metadata } : {}),
        ...(reservation !== undefined ? { reservation } : {}),
      },
    };
  }

  private report(owners: readonly CompiledLimit[], result: RateLimitResult): void {
    if (this.onOutcome === undefined) return;
    // A groups-keyed limit owns one window per group; it is one limit for metrics.
    for (const name of new Set(owners.map((o) => o.config.name))) this.onOutcome(name, result);
  }
}

function compileLimit(limit: RateLimitConfig): CompiledLimit {
  const globs = limit.match.claims[limit.key];
  return {
    config: limit,
    matches: compileMatch(limit.match),
    keyFilter: globs !== undefined ? compileGlobs(globs) : undefined,
    windowMs: limit.unit !== undefined ? UNIT_MS[limit.unit] : undefined,
  };
}

/** A rate limit whose claims a caller meets, with the caller's buckets (`tollgate whoami`). */
export interface CallerLimit {
  readonly config: RateLimitConfig;
  readonly windowMs: number;
  readonly requestsPerUnit: number;
  readonly unit: RateUnit;
  /** The store keys this caller's requests count in, as the planner would hit them. */
  readonly buckets: readonly string[];
}

/**
 * The request-rate limits that can count this caller's requests: those whose `match.claims` the
 * caller meets (their path, methods and models then say which requests). A limit with only
 * `maxConcurrent` has no window and is not listed. Read-only: nothing is hit.
 */
export function limitsFor(config: Pick<Config, 'rateLimits'>, identity: Identity): CallerLimit[] {
  return config.rateLimits.flatMap((limit) => {
    const compiled = compileLimit(limit);
    const { requestsPerUnit, unit } = limit;
    if (compiled.windowMs === undefined || requestsPerUnit === undefined || unit === undefined) return [];
    const claimsOnly = compileMatch({ claims: limit.match.claims });
    if (!claimsOnly({ path: '/', method: 'GET', identity }).matched) return [];
    const buckets = bucketValues(compiled, identity).map((v) => bucketKey(limit.name, v));
    return [{ config: limit, windowMs: compiled.windowMs, requestsPerUnit, unit, buckets }];
  });
}

/** The bucket values of a request under a limit; `undefined` is the shared no-value bucket. */
function bucketValues(limit: CompiledLimit, identity: Identity): (string | undefined)[] {
  const filter = limit.keyFilter;
  const values = claimValues(identity, limit.config.key).filter(
    (v) => filter === undefined || filter(v),
  );
  if (values.length === 0) return [undefined];
  return [...new Set(values)];
}

/** Least remaining wins; on a tie, the one that takes longer to reset. */
function tightestOf(results: readonly WindowState[]): WindowState | undefined {
  let best: WindowState | undefined;
  for (const r of results) {
    if (
      best === undefined ||
      r.remaining < best.remaining ||
      (r.remaining === best.remaining && r.resetMs > best.resetMs)
    ) {
      best = r;
    }
  }
  return best;
}

function rateHeaders(state: WindowState): Record<string, string> {
  return {
    'x-ratelimit-limit-requests': String(state.limit),
    'x-ratelimit-remaining-requests': String(state.remaining),
    'x-ratelimit-reset-requests': formatResetDuration(state.resetMs),
  };
}
