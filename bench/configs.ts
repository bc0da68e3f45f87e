/**
 * The benchmark's configurations as data: each entry says whether a sidecar runs (and with
 * which Tollgate features) and how its Envoy bootstrap is made. Adding a configuration is
 * adding an entry here.
 */
import { parseConfig } from '../src/config/load.js';
import type { Config } from '../src/config/schema.js';
import { baselineYaml, nativeYaml, stackYaml, withoutFilters } from './lib/bootstraps.js';
import { BENCH_GROUP, type BenchIssuer } from './lib/tokens.js';

export type CaseId = 'a' | 'b' | 'c' | 'd' | 'f';

/** The key Tollgate (and Envoy in (b)) puts on the upstream request. */
export const UPSTREAM_KEY = 'sk-bench-upstream';
export const UPSTREAM_KEY_ENV = 'BENCH_UPSTREAM_KEY';

export const IDENTITY_HEADERS: Readonly<Record<string, string>> = {
  'x-user-id': 'sub',
  'x-user-email': 'email',
  'x-tenant-id': 'tenant_id',
  'x-user-groups': 'groups',
};

/** The request every configuration serves: a small, non-streaming chat completion. */
export const CHAT_BODY = JSON.stringify({
  model: 'gpt-4o-mini',
  messages: [{ role: 'user', content: 'Say hello' }],
  max_tokens: 16,
});

export interface SidecarFeatures {
  /** A token budget for the tenant, so ext_proc metering has something to charge. */
  readonly budgets: boolean;
  /** Counters in Redis instead of memory. */
  readonly redis: boolean;
}

/**
 * Tollgate's configuration: authentication, one claim rule (group `bench` allowed, everything
 * else denied), a per-user request limit that never bites, and optionally a tenant budget
 * that never runs out and the Redis store; `maxConcurrent` (`--max-concurrent`) adds a
 * concurrency limit to the per-user limit, to measure what one costs: only with ext_proc
 * ((d), (f)), since without it nothing would free a slot. Logs at info: one audit line per decision, as in
 * production.
 */
export function tollgateConfig(
  issuer: BenchIssuer,
  features: SidecarFeatures,
  redisUrl?: string,
  maxConcurrent?: number,
): string {
  const headers = Object.entries(IDENTITY_HEADERS)
    .map(([h, claim]) => `  ${h}: ${claim}`)
    .join('\n');
  let yaml = `server:
  grpc: 127.0.0.1:0
  metrics: 127.0.0.1:0
authentication:
  - provider:
      name: bench
      issuer: ${issuer.url}
      clientId: ${issuer.audience}
      algorithms: [ES256]
upstream:
  apiKey: { env: ${UPSTREAM_KEY_ENV} }
identityHeaders:
${headers}
authorization:
  default: deny
  rules:
    - name: bench-group
      match: { claims: { groups: ${BENCH_GROUP} } }
      action: allow
rateLimits:
  - name: per-user
    match: { path: /v1/* }
    requestsPerUnit: 1000000000
    unit: minute
${maxConcurrent !== undefined && features.budgets ? `    maxConcurrent: ${maxConcurrent}\n` : ''}logging: { level: info }
`;
  if (features.budgets) {
    yaml += `tokenBudgets:
  - tenant: bench
    maxTokens: 1000000000000
    period: month
`;
  }
  if (features.redis) {
    if (redisUrl === undefined)
      throw new Error('bench: the Redis configuration needs a redis-server');
    yaml += `store:
  redis: { url: ${redisUrl}, timeoutMs: 50, onUnavailable: closed }
`;
  }
  return yaml;
}

export interface CaseContext {
  readonly issuer: BenchIssuer;
  /** Tollgate's validated configuration for this case ((c)'s for the cases without a sidecar). */
  readonly config: Config;
  readonly upstreamUrl: string;
  /** The sidecar's gRPC port (configurations without a sidecar get an unused one). */
  readonly grpcPort: number;
}

export interface EnvoyCase {
  readonly id: CaseId;
  readonly title: string;
  readonly sidecar?: SidecarFeatures;
  bootstrap(ctx: CaseContext): string;
}

const stack = (ctx: CaseContext): string => stackYaml(ctx.config, ctx.grpcPort, ctx.upstreamUrl);

/** What the Tollgate configurations run without extras: (c). */
export const AUTHZ_ONLY: SidecarFeatures = { budgets: false, redis: false };

/** The validated configuration of a case, as the sidecar will load it. */
export function caseConfig(
  issuer: BenchIssuer,
  c: EnvoyCase,
  redisUrl?: string,
  maxConcurrent?: number,
): { yaml: string; config: Config } {
  const yaml = tollgateConfig(issuer, c.sidecar ?? AUTHZ_ONLY, redisUrl, maxConcurrent);
  return { yaml, config: parseConfig(yaml, `bench configuration (${c.id})`) };
}

export const CASES: readonly EnvoyCase[] = [
  {
    id: 'a',
    title: 'Envoy → upstream (baseline)',
    bootstrap: (ctx) => baselineYaml(stack(ctx)),
  },
  {
    id: 'b',
    title: 'Envoy jwt_authn + rbac + local_ratelimit (in-process limit)',
    bootstrap: (ctx) =>
      nativeYaml(stack(ctx), {
        issuer: ctx.issuer.url,
        audience: ctx.issuer.audience,
        jwks: ctx.issuer.jwks(),
        group: BENCH_GROUP,
        upstreamKey: UPSTREAM_KEY,
      }),
  },
  {
    id: 'c',
    title: 'Envoy + Tollgate ext_authz (memory store)',
    sidecar: AUTHZ_ONLY,
    // ext_authz alone: the stack's bootstrap without its ext_proc filter.
    bootstrap: (ctx) => withoutFilters(stack(ctx), [
      'envoy.filters.http.ext_proc',
      'tollgate.ext_proc.stream_edit',
      'tollgate.ext_proc.stream_observe',
    ]),
  },
  {
    id: 'd',
    title: '(c) + ext_proc metering, token budget (memory store)',
    sidecar: { budgets: true, redis: false },
    bootstrap: stack,
  },
  {
    id: 'f',
    title: '(d) with the Redis store',
    sidecar: { budgets: true, redis: true },
    bootstrap: stack,
  },
];

/** How long and how hard each phase runs. */
export interface Profile {
  readonly name: 'full' | 'smoke';
  /** Distinct users (tokens) the Envoy configurations rotate through. */
  readonly users: number;
  readonly warmupSeconds: number;
  readonly saturationSeconds: number;
  readonly connections: number;
  readonly wrkThreads: number;
  readonly rate: number;
  readonly rateSeconds: number;
  /** Saturation with valid, denied and junk tokens mixed (bench/lib/tokens.ts mixedTokens). */
  readonly mixedSeconds: number;
  readonly streams: number;
  readonly streamConcurrency: number;
  readonly chunks: number;
  readonly chunkDelayMs: number;
  readonly checkUsers: readonly number[];
  readonly checkSeconds: number;
  readonly checkConcurrency: number;
  /** `--max-concurrent N`: the sidecars' per-user limit also has `maxConcurrent: N`. */
  readonly maxConcurrent?: number;
}

export const PROFILES: Readonly<Record<Profile['name'], Profile>> = {
  full: {
    name: 'full',
    users: 100,
    warmupSeconds: 3,
    saturationSeconds: 10,
    connections: 32,
    wrkThreads: 1,
    rate: 200,
    rateSeconds: 20,
    mixedSeconds: 60,
    streams: 100,
    streamConcurrency: 2,
    chunks: 20,
    chunkDelayMs: 10,
    checkUsers: [1, 1000, 100_000],
    checkSeconds: 8,
    checkConcurrency: 16,
  },
  smoke: {
    name: 'smoke',
    users: 10,
    warmupSeconds: 0,
    saturationSeconds: 1,
    connections: 4,
    wrkThreads: 1,
    rate: 50,
    rateSeconds: 0.5,
    mixedSeconds: 1,
    streams: 4,
    streamConcurrency: 1,
    chunks: 3,
    chunkDelayMs: 5,
    checkUsers: [1, 10, 100],
    checkSeconds: 0.25,
    checkConcurrency: 4,
  },
};
