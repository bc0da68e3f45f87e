/**
 * "Me": what Tollgate knows and holds about one verified caller, in plain data — the identity
 * and the claims the rules read, the models the caller may use, which rules could apply, and
 * every rate limit and budget that counts the caller's requests with what is used and left.
 * `tollgate whoami` gets it from the sidecar (whoami.ts answers `GET /v1/tollgate/whoami`);
 * a portal page renders the same object.
 *
 * Read-only by construction: counters are read through a CounterReader (the store's
 * `readBudget` / `readWindow`), never through `admit`, so asking uses no rate-limit window and
 * reserves nothing. Only the caller's own data is in it: no token, no upstream key, and no other
 * subject's counters (a rule that does not apply is named, never shown with its claim globs).
 */
import type { Config, RequestMatch } from '../config/schema.js';
import type { Identity } from '../domain/identity.js';
import { trustedClaim } from '../identity/claims.js';
import { limitsFor } from '../limits/rate-limit.js';
import { OPENAI_PRICES } from '../metering/openai-prices.js';
import { compileMatch } from '../policy/match.js';
import { applicableBudgets, budgetName } from '../budgets/planner.js';
import { readBudgets, type BudgetView } from '../budgets/view.js';
import type { CounterReader } from '../store/store.js';

/** Which requests a rule or limit judges, besides the caller's claims (absent = any). */
export interface MeRequestScope {
  readonly path?: string;
  readonly methods?: readonly string[];
  readonly models?: readonly string[];
}

export interface MeIdentity {
  readonly provider: string;
  readonly issuer: string;
  readonly subject: string;
  /** The provider's `claims.user` mapping (falls back to `sub`). */
  readonly user: string;
  readonly groups: readonly string[];
  readonly tenant?: string;
  /** When the token expires (ISO 8601). */
  readonly expiresAt: string;
}

/** One authorization rule, as it stands for this caller. */
export interface MeRule {
  readonly name: string;
  readonly action: 'allow' | 'deny';
  readonly mode: 'enforce' | 'shadow';
  /** The caller meets the rule's claims: it decides the caller's requests it scopes. */
  readonly applies: boolean;
  /** Only when it applies: the caller's claim values that met it, and which requests it judges. */
  readonly claimsUsed?: Readonly<Record<string, string>>;
  readonly requests?: MeRequestScope;
}

/** One counter of a rate limit for this caller (a `groups` key gives one per group). */
export interface MeBucket {
  /** The store key (`rl:<limit>:<value>`), as in logs and `tollgate explain`. */
  readonly key: string;
  /** Requests counted in the current window; absent when the store cannot read windows. */
  readonly count?: number;
  readonly remaining?: number;
  /** When the current window ends (ISO 8601); absent when no window is open. */
  readonly resetsAt?: string;
}

export interface MeRateLimit {
  readonly name: string;
  /** What names the bucket: `user`, `tenant`, `groups` or a claim path. */
  readonly key: string;
  readonly requestsPerUnit: number;
  readonly unit: string;
  readonly requests?: MeRequestScope;
  readonly buckets: readonly MeBucket[];
}

/** A token budget (or tokens-per-minute limit) the caller is charged to, read as it stands. */
export interface MeBudget extends BudgetView {
  /** `tenant:acme`, `group:ml`, `user:alice`, `…/minute`: as in logs, headers and `/budget`. */
  readonly name: string;
}

export interface MeView {
  /** When this was read (ISO 8601). */
  readonly at: string;
  readonly identity: MeIdentity;
  /**
   * The token's claims Tollgate reads beyond the mapped ones: the rules' and limits' claim
   * paths, and `iss`, `sub`, `aud`, `email`, `iat`, `exp`. An unverified email is left out,
   * as for matching. Never the whole payload (session ids, nonces, hashes stay out).
   */
  readonly claims: Readonly<Record<string, unknown>>;
  /** The candidate models (modelCandidates) the caller may use, judged as `GET /v1/models` is. */
  readonly models: readonly string[];
  /** `authorization.default` and `mode`, for requests no rule decides. */
  readonly authorization: { readonly default: 'allow' | 'deny'; readonly mode: 'enforce' | 'shadow' };
  readonly rules: readonly MeRule[];
  readonly rateLimits: readonly MeRateLimit[];
  readonly budgets: readonly MeBudget[];
}

/** What a view is read from; the live Check passes its own generation's parts. */
export interface MeSources {
  readonly config: Config;
  /** The model list's judge: the compiled rules of the live `authorize` step. */
  allowedModels(identity: Identity, candidates: readonly string[]): string[];
  /** Read-only counters: the live store (its `readWindow`, when it has one, for rate limits). */
  readonly counters: CounterReader;
}

const ALWAYS_SHOWN = ['iss', 'sub', 'aud', 'email', 'iat', 'exp'] as const;
const MAPPED: ReadonlySet<string> = new Set(['user', 'groups', 'tenant']);

/**
 * Model ids a model list is judged over when the upstream is not asked (`tollgate explain`,
 * whoami): the rules' literal models, the operator's literal priced models, then OpenAI's.
 */
export function modelCandidates(config: Config): string[] {
  const literal = (m: string): boolean => !/[*?[\]]/.test(m);
  const fromRules = config.authorization.rules.flatMap((r) => r.match.models ?? []);
  const fromPricing = (config.pricing?.models ?? []).map((p) => p.model);
  const fromPrices = OPENAI_PRICES.map((p) => p.model);
  return [...new Set([...fromRules, ...fromPricing, ...fromPrices].filter(literal))];
}

function scope(match: RequestMatch): MeRequestScope | undefined {
  const out = {
    ...(match.path !== undefined ? { path: match.path } : {}),
    ...(match.methods !== undefined ? { methods: match.methods } : {}),
    ...(match.models !== undefined ? { models: match.models } : {}),
  };
  return Object.keys(out).length > 0 ? out : undefined;
}

/** The claims shown: what the rules and limits read (beyond the mapping), and the basics. */
function shownClaims(config: Config, identity: Identity): Record<string, unknown> {
  const paths = new Set<string>(ALWAYS_SHOWN);
  for (const m of [...config.authorization.rules, ...config.rateLimits].map((r) => r.match)) {
    for (const key of Object.keys(m.claims)) if (!MAPPED.has(key)) paths.add(key);
  }
  for (const limit of config.rateLimits) if (!MAPPED.has(limit.key)) paths.add(limit.key);
  const out: Record<string, unknown> = {};
  for (const path of paths) {
    const value = trustedClaim(identity.claims, path);
    if (value !== undefined) out[path] = value;
  }
  return out;
}

function rulesFor(config: Config, identity: Identity): MeRule[] {
  return config.authorization.rules.map((rule) => {
    const met = compileMatch({ claims: rule.match.claims })({ path: '/', method: 'GET', identity });
    const base = { name: rule.name, action: rule.action, mode: rule.mode };
    if (!met.matched) return { ...base, applies: false };
    const requests = scope(rule.match);
    return { ...base, applies: true, claimsUsed: met.claimsUsed, ...(requests !== undefined ? { requests } : {}) };
  });
}

async function rateLimitsFor(config: Config, identity: Identity, counters: CounterReader, now: number): Promise<MeRateLimit[]> {
  const read = counters.readWindow?.bind(counters);
  return Promise.all(
    limitsFor(config, identity).map(async ({ config: limit, requestsPerUnit, unit, buckets }) => {
      const requests = scope(limit.match);
      return {
        name: limit.name,
        key: limit.key,
        requestsPerUnit,
        unit,
        ...(requests !== undefined ? { requests } : {}),
        buckets: await Promise.all(
          buckets.map(async (key): Promise<MeBucket> => {
            if (read === undefined) return { key };
            const w = await read(key, now);
            return {
              key,
              count: w.count,
              remaining: Math.max(0, requestsPerUnit - w.count),
              ...(w.resetMs !== undefined ? { resetsAt: new Date(now + w.resetMs).toISOString() } : {}),
            };
          }),
        ),
      };
    }),
  );
}

/** The caller's view, read now. Store errors propagate (the caller answers 503). */
export async function describeCaller(sources: MeSources, identity: Identity, now: number): Promise<MeView> {
  const { config, counters } = sources;
  const charged = applicableBudgets(config.tokenBudgets, identity);
  const [rateLimits, budgets] = await Promise.all([
    rateLimitsFor(config, identity, counters, now),
    readBudgets(charged, counters, now),
  ]);
  return {
    at: new Date(now).toISOString(),
    identity: {
      provider: identity.provider,
      issuer: identity.issuer,
      subject: identity.subject,
      user: identity.user,
      groups: identity.groups,
      ...(identity.tenant !== undefined ? { tenant: identity.tenant } : {}),
      expiresAt: new Date(identity.expiresAt * 1000).toISOString(),
    },
    claims: shownClaims(config, identity),
    models: sources.allowedModels(identity, modelCandidates(config)),
    authorization: { default: config.authorization.default, mode: config.authorization.mode },
    rules: rulesFor(config, identity),
    rateLimits,
    budgets: budgets.map((b, i) => ({ name: budgetName(charged[i] as (typeof charged)[number]), ...b })),
  };
}
