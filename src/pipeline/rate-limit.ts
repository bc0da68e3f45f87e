/**
 * Request rate limits (`rateLimits:`): every matching entry applies, and all of its windows
 * are hit in one all-or-nothing store call, so a refused request consumes from no limit.
 *
 * Buckets. A limit's `key` (`user`, `tenant`, `groups` or a claim path) names the bucket:
 * `rl:<limit>:<value>`. A list-valued key (`groups`, or a list claim) gives one bucket per
 * value and the request must have room in all of them — a member of two teams draws on both
 * teams' allowances. When the limit's own `match.claims` has globs for that same key, only
 * the values matching them name buckets (a limit on `groups: team-*` keyed by `groups`
 * counts per team, not per "everyone" group). A caller with no value for the key shares one
 * bucket, `rl:<limit>`, with every other such caller: stricter than skipping the limit,
 * which would let a missing claim escape it.
 */
import { createHash } from 'node:crypto';
import type { Config, RateLimitConfig, RateUnit } from '../config/schema.js';
import { compileGlobs, type GlobMatcher } from '../policy/glob.js';
import { claimValues, compileMatch, type CompiledMatch } from '../policy/match.js';
import type { HitResult, Store, WindowHit, WindowState } from '../store/store.js';
import { deny } from './denials.js';
import { formatResetDuration, retryAfterSeconds } from './rate-headers.js';
import type { RequestContext, Stage, StageResult } from './stage.js';
import type { Identity } from './types.js';

export const UNIT_MS: Readonly<Record<RateUnit, number>> = {
  second: 1000,
  minute: 60_000,
  hour: 3_600_000,
  day: 86_400_000,
};

/** Longest encoded bucket value kept verbatim; longer ones are hashed to bound key size. */
const MAX_VALUE_LENGTH = 128;

interface CompiledLimit {
  readonly config: RateLimitConfig;
  readonly matches: CompiledMatch;
  /** The limit's own globs on its bucket key, when it has any. */
  readonly keyFilter: GlobMatcher | undefined;
  readonly windowMs: number;
}

/** Store key of one bucket; exported for tests and operators' tooling. */
export function bucketKey(limitName: string, value: string | undefined): string {
  const name = encodeURIComponent(limitName);
  if (value === undefined) return `rl:${name}`;
  let v = encodeURIComponent(value);
  if (v.length > MAX_VALUE_LENGTH)
    v = `sha256.${createHash('sha256').update(value).digest('base64url')}`;
  return `rl:${name}:${v}`;
}

export class RateLimitStage implements Stage {
  readonly name = 'rate-limit';
  private readonly limits: readonly CompiledLimit[];
  private readonly store: Store;

  /** Compiles every limit's match once; build a new stage when the config changes. */
  constructor(config: Pick<Config, 'rateLimits'>, store: Store) {
    this.store = store;
    this.limits = config.rateLimits.map((limit) => {
      const globs = limit.match.claims[limit.key];
      return {
        config: limit,
        matches: compileMatch(limit.match),
        keyFilter: globs !== undefined ? compileGlobs(globs) : undefined,
        windowMs: UNIT_MS[limit.unit],
      };
    });
  }

  async run(ctx: RequestContext): Promise<StageResult> {
    const hits: WindowHit[] = [];
    const owners: CompiledLimit[] = [];
    const input = {
      path: ctx.request.path,
      method: ctx.request.method,
      identity: ctx.identity,
      ...(ctx.model !== undefined ? { model: ctx.model } : {}),
    };
    for (const limit of this.limits) {
      if (!limit.matches(input).matched) continue;
      for (const key of bucketKeys(limit, ctx.identity)) {
        hits.push({ key, limit: limit.config.requestsPerUnit, windowMs: limit.windowMs });
        owners.push(limit);
      }
    }
    if (hits.length === 0) return { ok: {} };

    let outcome: HitResult;
    try {
      outcome = await this.store.hitWindows(hits, ctx.now);
    } catch {
      // Whatever broke (the guarded store's closed policy, or an unguarded store), refuse:
      // admitting without counting is only done when the operator chose `open`.
      const message = 'The rate-limit store is unavailable. Please try again shortly.';
      return { deny: deny('store_unavailable', message, { headers: { 'retry-after': '1' } }) };
    }

    if (!outcome.allowed) {
      const i = outcome.deniedIndex ?? 0;
      const limit = owners[i]?.config;
      const state = outcome.results[i];
      if (limit === undefined || state === undefined)
        throw new Error('store denied an unknown window');
      return {
        deny: deny(
          'rate_limited',
          `Rate limit reached for ${limit.name} on requests per ${limit.unit}: Limit ${limit.requestsPerUnit}. ` +
            `Please try again in ${formatResetDuration(state.resetMs)}.`,
          {
            headers: { 'retry-after': retryAfterSeconds(state.resetMs), ...rateHeaders(state) },
            rule: limit.name,
          },
        ),
      };
    }

    const metadata =
      outcome.degraded !== undefined ? { rateLimitDegraded: outcome.degraded } : undefined;
    // With `open` nothing was counted, so there is no truthful remaining count to advertise.
    const tightest = outcome.degraded === 'open' ? undefined : tightestOf(outcome.results);
    return {
      ok: {
        ...(tightest !== undefined ? { responseHeaders: rateHeaders(tightest) } : {}),
        ...(metadata !== undefined ? { metadata } : {}),
      },
    };
  }
}

function bucketKeys(limit: CompiledLimit, identity: Identity): string[] {
  const filter = limit.keyFilter;
  const values = claimValues(identity, limit.config.key).filter(
    (v) => filter === undefined || filter(v),
  );
  if (values.length === 0) return [bucketKey(limit.config.name, undefined)];
  return [...new Set(values)].map((v) => bucketKey(limit.config.name, v));
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
