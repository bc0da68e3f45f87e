/**
 * The validated, frozen configuration that running code reads. `load.ts` turns YAML into
 * this shape (or a ConfigError listing every problem); nothing else parses config.
 */

export type SecretRef = { readonly env: string } | { readonly file: string };

export type Algorithm = 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'PS384' | 'PS512' | 'ES256' | 'ES384' | 'ES512' | 'EdDSA';
export const ALGORITHMS: readonly Algorithm[] = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];
export const DEFAULT_ALGORITHMS: readonly Algorithm[] = ['RS256', 'ES256', 'PS256', 'EdDSA'];

export interface ClaimMapping {
  /** Claim path naming the user (default `email`, falling back to `sub` when absent). */
  readonly user: string;
  /** Claim path of the group list (default `groups`). */
  readonly groups: string;
  /** Claim path of the tenant (default `tenant_id`). */
  readonly tenant: string;
}

export interface ProviderConfig {
  readonly name: string;
  readonly issuer: string;
  /** Accepted audiences: `clientId` plus `audiences`. At least one. */
  readonly audiences: readonly string[];
  readonly jwksUri?: string;
  readonly algorithms: readonly Algorithm[];
  readonly clockSkewSeconds: number;
  readonly maxTokenBytes: number;
  readonly claims: ClaimMapping;
  /** Minimum seconds between two JWKS refetches triggered by an unknown `kid`. */
  readonly jwksCooldownSeconds: number;
  /** Seconds a fetched key set is considered fresh before a background refresh. */
  readonly jwksCacheMaxAgeSeconds: number;
  /** Timeout of one discovery or JWKS HTTP call. */
  readonly jwksTimeoutMs: number;
}

export interface ServerConfig {
  /** host:port of the gRPC listener (ext_authz + ext_proc + health). Port 0 = any free port. */
  readonly grpc: string;
  /** host:port of the metrics HTTP listener; absent = disabled. */
  readonly metrics?: string;
  /**
   * A bearer secret the listener's per-subject routes (`/budget`, `/counters`) require; absent =
   * they are open to whoever reaches the port. `/metrics` and `/healthz` never need it.
   */
  readonly metricsToken?: SecretRef;
  /** Seconds to let in-flight calls finish on SIGTERM before forcing shutdown. */
  readonly shutdownGraceSeconds: number;
  /**
   * The largest request body accepted: what Envoy buffers for ext_authz (`max_request_bytes`)
   * and the sidecar receives in one Check. Default DEFAULT_MAX_REQUEST_BYTES.
   */
  readonly maxRequestBytes: number;
  /**
   * Worker processes sharing the gRPC port (node:cluster): a number, or `auto` for one per
   * available CPU. 1 (the default) runs one process and no cluster. More than one needs
   * `store.redis`: the counters must live in one place (docs/workers.md).
   */
  readonly workers: number | 'auto';
  /**
   * How far (percent) V8 lets the old generation grow past the live heap before a full
   * collection; 0 = V8's adaptive factor. Default DEFAULT_HEAP_GROWING_PERCENT.
   */
  readonly heapGrowingPercent: number;
  /**
   * `GET /v1/tollgate/whoami` on the Envoy listener: the caller's own identity, models, rules,
   * limits and budgets, answered by the sidecar (`tollgate whoami`). Absent = on; `false` = the
   * path is an ordinary request.
   */
  readonly whoami?: boolean;
}

/**
 * 72 MiB. OpenAI accepts up to 50 MB of images per request (20 MB each); sent inline as
 * base64 data URLs, that is about 67 MB of JSON, plus the text around it.
 */
export const DEFAULT_MAX_REQUEST_BYTES = 72 * 1024 * 1024;

/** `server.heapGrowingPercent` default: the old generation may grow 30 % past the live heap (server/heap.ts). */
export const DEFAULT_HEAP_GROWING_PERCENT = 30;

export interface UpstreamConfig {
  readonly apiKey?: SecretRef;
  readonly tenants: Readonly<Record<string, { readonly apiKey: SecretRef; readonly project?: string; readonly organization?: string }>>;
}

/** Header name (lower-case) → claim path. */
export type IdentityHeaders = Readonly<Record<string, string>>;

/** Glob matchers per claim key; a key is `user`, `groups`, `tenant` or a claim path. */
export type ClaimMatch = Readonly<Record<string, readonly string[]>>;

export interface RequestMatch {
  /** Exact path, or a prefix when it ends with `*`. Absent = any path. */
  readonly path?: string;
  readonly methods?: readonly string[];
  readonly models?: readonly string[];
  readonly claims: ClaimMatch;
}

export interface AuthorizationRule {
  readonly name: string;
  readonly match: RequestMatch;
  readonly action: 'allow' | 'deny';
  readonly mode: 'enforce' | 'shadow';
}

export interface AuthorizationConfig {
  readonly default: 'allow' | 'deny';
  readonly mode: 'enforce' | 'shadow';
  readonly rules: readonly AuthorizationRule[];
}

export type RateUnit = 'second' | 'minute' | 'hour' | 'day';

/**
 * A request rate limit (`requestsPerUnit` per `unit`), a concurrency limit (`maxConcurrent`
 * requests in flight), or both on the same buckets: an entry has at least one of the two.
 */
export interface RateLimitConfig {
  readonly name: string;
  readonly match: RequestMatch;
  /** With `unit`: requests per window. */
  readonly requestsPerUnit?: number;
  readonly unit?: RateUnit;
  /**
   * Requests in flight per bucket: a request holds its slot from admission until its
   * response ends (or it is released), at most `metering.reservationTtlSeconds`.
   */
  readonly maxConcurrent?: number;
  /** Claim key naming the bucket (`user`, `tenant`, `groups` or a claim path). */
  readonly key: string;
}

/** `minute` makes a budget a token rate limit (tokens per minute): refused with 429 `rate_limit_exceeded`. */
export type BudgetPeriod = 'minute' | 'hour' | 'day' | 'week' | 'month';

export interface TokenBudgetConfig {
  /** Exactly one of tenant / group / user names the subject charged. */
  readonly tenant?: string;
  readonly group?: string;
  readonly user?: string;
  /** Tokens per period; at least one of `maxTokens` and `maxCostMicros` is set. */
  readonly maxTokens?: number;
  /** `maxCost` (USD per period) in whole micro-dollars (10⁻⁶ USD), the unit the store counts. */
  readonly maxCostMicros?: number;
  readonly period: BudgetPeriod;
  /** IANA time zone for calendar alignment; default UTC. */
  readonly timeZone: string;
}

/**
 * What happens to a request whose worst case (prompt estimate + its output limit × n) does not
 * fit the room left in every budget that applies: `refuse` it (429 budget_exhausted), or `cap`
 * its output limit so that it fits (refused only when not even a minimal output fits).
 */
export type FitToBudget = 'refuse' | 'cap';
export const FIT_TO_BUDGET: readonly FitToBudget[] = ['refuse', 'cap'];

export interface MeteringConfig {
  /** Output tokens reserved (and written into the request) when it names no output limit. */
  readonly defaultMaxOutputTokens: number;
  /**
   * Seconds a budget reservation lives when it is never settled (a crashed replica, a lost
   * ext_proc stream). Absent = DEFAULT_RESERVATION_TTL_SECONDS in budgets/planner.ts.
   */
  readonly reservationTtlSeconds?: number;
  /** Absent = `refuse` (DEFAULT_FIT_TO_BUDGET in budgets/fit.ts). */
  readonly fitToBudget?: FitToBudget;
  /** Absent = DEFAULT_DAILY_USAGE. */
  readonly dailyUsage?: DailyUsageConfig;
}

/**
 * The usage book (store/usage-book.ts): per-day, per-user, per-model tallies written at
 * settlement for the portal's charts and Owners view.
 */
export interface DailyUsageConfig {
  /** Days a day's tallies are kept after it ends; 0 = no tallies written. */
  readonly keepDays: number;
  /** IANA zone whose calendar days the tallies follow (use your budgets' zone). */
  readonly timeZone: string;
}

export const DEFAULT_DAILY_USAGE: DailyUsageConfig = { keepDays: 62, timeZone: 'UTC' };

/**
 * One model's prices, as pico-dollars per token (= USD per million tokens × 10⁶, so `2.50` is
 * 2_500_000): integers, read from the decimal text the operator wrote, never a float.
 */
export interface PriceConfig {
  readonly input: number;
  /** Input tokens served from the prompt cache; absent = `input`. */
  readonly cachedInput?: number;
  readonly output: number;
  /** Reasoning tokens when priced apart from other output; absent = `output`. */
  readonly reasoning?: number;
}

export interface ModelPricingConfig extends PriceConfig {
  /** A glob on the model name (ignoring case): `gpt-4o`, `gpt-4o-2024-*`, `ft:gpt-4o-mini:*`. */
  readonly model: string;
  /** Prices by the request's `service_tier` (`flex`, `priority`, …); other tiers use the model's. */
  readonly tiers?: Readonly<Record<string, PriceConfig>>;
}

/** `pricing:` — what a model costs, for `maxCost` budgets and cost reporting. */
export interface PricingConfig {
  /** The operator's prices, consulted before the built-in table: the most specific pattern wins, then the first listed. */
  readonly models: readonly ModelPricingConfig[];
  /** Use the dated built-in OpenAI table after `models` (default true). */
  readonly builtin: boolean;
  /**
   * A model neither table prices: `refuse` a request charged to a cost budget (403
   * `model_not_priced`), or price it at this fallback.
   */
  readonly unknownModel: 'refuse' | PriceConfig;
}

export const DEFAULT_PRICING: PricingConfig = { models: [], builtin: true, unknownModel: 'refuse' };

export type OnUnavailable = 'closed' | 'open' | 'local';

/**
 * `store.redis`: exactly one of `url` (one Redis), `sentinels` + `name` (Redis Sentinel) or
 * `cluster` (Redis Cluster).
 */
export interface RedisStoreConfig {
  /** `redis://` / `rediss://` URL, or where to read it (`{env}`, `{file}`: it may hold a password). */
  readonly url?: string | SecretRef;
  /** Sentinel addresses (`host:port`); with `name`, the monitored primary. */
  readonly sentinels?: readonly string[];
  readonly name?: string;
  /** Cluster seed nodes (`host:port`). */
  readonly cluster?: readonly string[];
  /** Password of the data nodes (Sentinel and Cluster; a URL carries its own). */
  readonly password?: SecretRef;
  /**
   * `true`: connect to Sentinel and Cluster nodes over TLS. `{ ca }`: also trust the CA in that
   * PEM file (instead of Node's CA store), for a `rediss://` URL, the sentinels or the nodes.
   */
  readonly tls?: boolean | RedisTlsConfig;
  /** Replicas that must acknowledge each write (Redis WAIT); absent = 0. */
  readonly waitForReplicas?: number;
  readonly timeoutMs: number;
  readonly onUnavailable: OnUnavailable;
  readonly keyPrefix: string;
}

/** `store.redis.tls` as a mapping. */
export interface RedisTlsConfig {
  /** PEM file with the CA certificate(s) that signed the server's certificate. */
  readonly ca: { readonly file: string };
}

export interface StoreConfig {
  readonly redis?: RedisStoreConfig;
}

export interface LoggingConfig {
  readonly level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
  /**
   * Fraction (0..1) of ALLOWED decisions that get an audit line; absent = 1 (every one).
   * Denials, shadow denials and usage lines are always written.
   */
  readonly sampleAllowed?: number;
}

/** Default of `metrics.maxLabelValues`. */
export const DEFAULT_MAX_LABEL_VALUES = 100;

/** `metrics:` — label options of the Prometheus endpoint (the address is `server.metrics`). */
export interface MetricsConfig {
  /** Add a `tollgate_user` label to decision and token series (default false). */
  readonly perUserLabels: boolean;
  /** Distinct values kept per free-form label (user, tenant, model); the rest become `other`. */
  readonly maxLabelValues: number;
}

export interface Config {
  readonly server: ServerConfig;
  readonly authentication: readonly ProviderConfig[];
  readonly upstream: UpstreamConfig;
  readonly identityHeaders: IdentityHeaders;
  readonly authorization: AuthorizationConfig;
  readonly rateLimits: readonly RateLimitConfig[];
  readonly tokenBudgets: readonly TokenBudgetConfig[];
  readonly metering: MeteringConfig;
  /** Absent = DEFAULT_PRICING (the built-in table, unknown models refused for cost budgets). */
  readonly pricing?: PricingConfig;
  readonly store: StoreConfig;
  readonly logging: LoggingConfig;
  /** Absent = defaults (no per-user labels, 100 values per label). */
  readonly metrics?: MetricsConfig;
  /** The self-service portal (docs/portal.md); absent = off. */
  readonly portal?: PortalConfig;
}

/**
 * The self-service portal: its own HTTP listener where a developer signs in with the IdP
 * (authorization code + PKCE) and sees the "Me" view. Absent = no listener.
 */
export interface PortalConfig {
  /** host:port of the portal's HTTP listener (port 0 = any free port). */
  readonly listen: string;
  /** The `authentication` provider the portal signs in with; its issuer is the IdP. */
  readonly provider: string;
  /** The portal's own OAuth client id at the IdP (a web client with redirect `<publicUrl>/callback`). */
  readonly clientId: string;
  /** The client's secret; absent = a public client (PKCE only). */
  readonly clientSecret?: SecretRef;
  /** The portal's URL as the browser sees it; the redirect URI is `<publicUrl>/callback`. */
  readonly publicUrl: string;
  /** Scopes asked for (default `openid email profile`; `openid` is always included). */
  readonly scope: string;
  /** RFC 8707 `resource` sent with the authorization request, for IdPs that mint the gateway's audience that way. */
  readonly resource?: string;
  /** Which token signs the developer in and is offered for copying: `access` (default) or `id`. */
  readonly token: 'access' | 'id';
  /** The SDK base URL shown in the snippets (e.g. `https://llm.example.com/v1`); absent = a placeholder. */
  readonly gatewayUrl?: string;
  /** Seconds a session lasts at most (it also ends when its token expires). Default 28800. */
  readonly sessionTtlSeconds: number;
  /** The most sessions kept in memory; the oldest is dropped past it. Default 10000. */
  readonly maxSessions: number;
  /** Who sees the Owners view; absent = nobody. */
  readonly owners?: PortalOwners;
}

/** The Owners view's audience, by the signed-in identity's mapped groups. */
export interface PortalOwners {
  /** Members see every tenant. */
  readonly groups: readonly string[];
  /** Members see their own tenant (`*`: every member of a tenant sees it). */
  readonly tenantGroups: readonly string[];
}
