/**
 * The engine of `tollgate explain`, `test` and `diff`: one request, described on the command
 * line or in a cases file, run through exactly the live Check (`checkParts` → `checkSteps` →
 * `CheckFlow`, as app.ts builds it) and told back as an Explanation. Three things differ from a
 * live sidecar, none of them in how a request is judged:
 * - the caller may be given as claims (no signature to verify; the provider's claim mapping
 *   still applies), or as a token verified against the providers' keys;
 * - the store is a PeekStore: limits and budgets are read as they stand, never counted;
 * - the upstream keys are not resolved: the identity headers show `[redacted]` in their place.
 * An Explainer runs one request at a time (its observers collect per request).
 */
import { decodeJwt, type JWTPayload } from 'jose';
import { checkParts } from '../app.js';
import type { IdentityVerifier } from '../check/authenticate.js';
import type { UpstreamCredentials } from '../check/respond.js';
import { CheckFlow, checkSteps } from '../check/flow.js';
import { modelCandidates } from '../check/me.js';
import { errorText } from '../config/load.js';
import type { Config, ProviderConfig } from '../config/schema.js';
import { isAnswer, type Decision } from '../domain/decision.js';
import type { Identity } from '../domain/identity.js';
import type { InboundRequest } from '../domain/request.js';
import { toCheckResponse } from '../edge/authz-adapter.js';
import { toIdentity } from '../identity/mapping.js';
import { Authenticator } from '../identity/verify.js';
import { budgetKey, budgetName } from '../budgets/planner.js';
import { periodWindow } from '../budgets/period.js';
import type { RuleTrace } from '../policy/rules.js';
import { PeekStore } from '../store/peek.js';
import type { CounterReader } from '../store/store.js';
import { createLogger, type Logger } from '../telemetry/logger.js';

/** Stands in for every upstream key in an explanation: keys are never resolved or shown. */
export const REDACTED_KEY = '[redacted]';

/** Who is calling: claims (signature not checked) or a bearer token. */
export type Caller =
  | { readonly claims: Readonly<Record<string, unknown>>; readonly provider?: string }
  | { readonly token: string; readonly insecureDecode?: boolean; readonly provider?: string }
  | { readonly anonymous: true };

/** A request to explain, in plain terms. */
export interface ExplainRequest {
  readonly caller: Caller;
  readonly method: string;
  /** May carry a query string. */
  readonly path: string;
  /** Extra request headers (lower-case names). */
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string | Buffer;
}

export interface LimitLine {
  readonly kind: 'rate-limit' | 'concurrency' | 'budget';
  /** The rate limit's name, or the budget's `kind:subject`. */
  readonly name: string;
  readonly key: string;
  readonly limit: number;
  /**
   * Hits in the window, requests in flight (concurrency), or tokens used (+ reserved) in the
   * budget; undefined when unknown.
   */
  readonly current?: number;
  readonly reserved?: number;
  /** Tokens the request would reserve (budgets). */
  readonly wouldReserve?: number;
  /** Room left after this request, as the store would answer. */
  readonly remaining: number;
  readonly resetMs?: number;
  /** This item refused the request. */
  readonly refused: boolean;
}

export interface Explanation {
  /** `answer`: Tollgate answers the request itself (`GET /v1/tollgate/whoami`, status 200). */
  readonly decision: 'allow' | 'deny' | 'answer';
  /** HTTP status the caller would see from Tollgate: 200 for an allow stands for "passed upstream". */
  readonly status: number;
  /** `allowed`, or the `x-tollgate-reason` of the denial. */
  readonly reason: string;
  /** The deciding rule: a rule's name, `default`, or the denying rule/limit; absent when none ran. */
  readonly rule?: string;
  readonly message?: string;
  /** A denial's response headers and OpenAI envelope, exactly as Envoy would send them. */
  readonly response?: { readonly headers: Readonly<Record<string, string>>; readonly body: unknown };
  /** Every rule the policy looked at, in order, and why it did or did not match. */
  readonly rules: readonly RuleTrace[];
  readonly shadowDenied?: { readonly rule: string; readonly reason: string };
  readonly identity?: { readonly provider: string; readonly user: string; readonly groups: readonly string[]; readonly tenant?: string };
  readonly limits: readonly LimitLine[];
  /** Headers set toward the upstream (identity headers, the upstream key as `[redacted]`). */
  readonly upstreamHeaders: Readonly<Record<string, string>>;
  readonly removedHeaders: readonly string[];
  /** Headers added to the caller's response (`x-ratelimit-*`, `x-tollgate-request-id`). */
  readonly responseHeaders: Readonly<Record<string, string>>;
  /** Of the candidate models, those `GET /v1/models` would list for this caller. */
  readonly models?: readonly string[];
  readonly warnings: readonly string[];
}

export interface ExplainerOptions {
  /** Where current counters come from; default an empty memory store (nothing counted yet). */
  readonly counters?: CounterReader;
  /** Candidate model ids for the model list; default the rules' literal models and OpenAI's. */
  readonly candidateModels?: readonly string[];
  readonly now?: () => number;
  /** Where the Check's audit lines go; default nowhere (a silent logger). */
  readonly logger?: Logger;
}

/** The id every explained request carries (its audit line is never written). */
export const EXPLAIN_REQUEST_ID = 'tollgate-explain';

/** What the explain verifier is told per request: the caller to return. */
class ExplainVerifier implements IdentityVerifier {
  caller: Caller = { anonymous: true };
  private readonly config: Config;
  private readonly now: () => number;
  private authenticator: Authenticator | undefined;

  constructor(config: Config, now: () => number) {
    this.config = config;
    this.now = now;
  }

  authenticate(authorization: string | undefined): Promise<Identity> {
    const { caller } = this;
    if ('claims' in caller) return Promise.resolve(this.fromClaims(caller.claims, caller.provider));
    if ('token' in caller && caller.insecureDecode === true) {
      return Promise.resolve(this.fromClaims(decodeJwt(caller.token), caller.provider));
    }
    // A token to verify, or no caller at all: the live verifier, with the live errors.
    this.authenticator ??= new Authenticator(this.config.authentication, { now: this.now });
    return this.authenticator.authenticate(authorization);
  }

  /** The provider's claim mapping applied to claims whose signature nobody checked. */
  private fromClaims(claims: Readonly<Record<string, unknown>>, name: string | undefined): Identity {
    const provider = pickProvider(this.config.authentication, claims, name);
    const payload: JWTPayload = {
      iss: provider.issuer,
      exp: Math.floor(this.now() / 1000) + 3600,
      ...claims,
    };
    return toIdentity(provider, payload);
  }
}

/** `--provider`, else the provider of the claims' `iss`, else the first one. */
function pickProvider(providers: readonly ProviderConfig[], claims: Readonly<Record<string, unknown>>, name: string | undefined): ProviderConfig {
  if (name !== undefined) {
    const named = providers.find((p) => p.name === name);
    if (named === undefined) throw new ExplainError(`no provider named ${JSON.stringify(name)} in the configuration`);
    return named;
  }
  const byIssuer = providers.find((p) => p.issuer === claims['iss']);
  const first = byIssuer ?? providers[0];
  if (first === undefined) throw new ExplainError('the configuration has no authentication provider to map claims with');
  return first;
}

/** A request that cannot be explained as given (bad claims, unknown provider...). */
export class ExplainError extends Error {}

/** Upstream credentials with every key replaced by REDACTED_KEY. */
function redactedCredentials(config: Config): UpstreamCredentials {
  const tenants: Record<string, { apiKey: string; project?: string; organization?: string }> = {};
  for (const [name, t] of Object.entries(config.upstream.tenants)) {
    tenants[name] = {
      apiKey: REDACTED_KEY,
      ...(t.project !== undefined ? { project: t.project } : {}),
      ...(t.organization !== undefined ? { organization: t.organization } : {}),
    };
  }
  return { ...(config.upstream.apiKey !== undefined ? { apiKey: REDACTED_KEY } : {}), tenants };
}

/** Model ids a model list is judged over by default (check/me.ts: the rules', the prices'). */
export const defaultCandidates = modelCandidates;

export class Explainer {
  readonly config: Config;
  private readonly flow: CheckFlow;
  private readonly verifier: ExplainVerifier;
  private readonly store: PeekStore;
  private readonly authorize: ReturnType<typeof checkParts>['authorize'];
  private readonly candidates: readonly string[];
  private readonly now: () => number;
  private traces: RuleTrace[] = [];

  constructor(config: Config, opts: ExplainerOptions = {}) {
    this.config = config;
    this.now = opts.now ?? Date.now;
    this.verifier = new ExplainVerifier(config, this.now);
    this.store = new PeekStore(opts.counters ?? emptyCounters);
    this.candidates = opts.candidateModels ?? defaultCandidates(config);
    const parts = checkParts(config, {
      verifier: this.verifier,
      store: this.store,
      credentials: redactedCredentials(config),
      observePolicy: (trace) => this.traces.push(trace),
    });
    this.authorize = parts.authorize;
    this.flow = new CheckFlow({
      config,
      steps: checkSteps(parts),
      logger: opts.logger ?? createLogger({ level: 'silent' }),
      now: this.now,
    });
  }

  async explain(req: ExplainRequest): Promise<Explanation> {
    this.traces = [];
    const admissionsBefore = this.store.admissions.length;
    this.verifier.caller = req.caller;
    const warnings: string[] = [];
    if ('token' in req.caller && req.caller.insecureDecode === true) {
      warnings.push('the token was DECODED WITHOUT VERIFYING its signature (--insecure-decode): Tollgate itself would verify it');
    }
    this.store.readFailure = undefined;
    const decision = await this.flow.decide(inbound(req));
    // The live Check would have counters to read: a reader that failed explains nothing.
    if (this.store.readFailure !== undefined) {
      const cause = this.store.readFailure;
      throw new ExplainError(`cannot read the counters: ${errorText(cause)}`, { cause });
    }
    const traces = this.traces;
    const admission = this.store.admissions.length > admissionsBefore ? this.store.admissions.at(-1) : undefined;
    const identity = decision.allow !== undefined ? decision.allow.identity : decision.identity;
    return {
      ...outcome(decision),
      rules: traces,
      ...(decision.allow?.shadowDenied !== undefined ? { shadowDenied: decision.allow.shadowDenied } : {}),
      ...(identity !== undefined
        ? {
            identity: {
              provider: identity.provider,
              user: identity.user,
              groups: identity.groups,
              ...(identity.tenant !== undefined ? { tenant: identity.tenant } : {}),
            },
            models: this.authorize.allowedModels(identity, this.candidates),
          }
        : {}),
      limits: admission !== undefined ? limitLines(this.config, admission, this.now()) : [],
      upstreamHeaders: decision.allow?.setHeaders ?? {},
      removedHeaders: decision.allow?.removeHeaders ?? [],
      responseHeaders: decision.allow?.responseHeaders ?? {},
      warnings,
    };
  }
}

const emptyCounters: CounterReader = {
  readBudget: () => Promise.resolve({ used: 0, reserved: 0 }),
  readWindow: () => Promise.resolve({ count: 0 }),
};

/** The request the Check sees, as the Envoy adapter would build it. */
function inbound(req: ExplainRequest): InboundRequest {
  const q = req.path.indexOf('?');
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers ?? {})) headers[k.toLowerCase()] = v;
  headers['x-request-id'] ??= EXPLAIN_REQUEST_ID;
  // Claims stand in for a verified token; the placeholder keeps the bearer shape the Check needs.
  if ('claims' in req.caller) headers['authorization'] = 'Bearer explained-claims';
  else if ('token' in req.caller) headers['authorization'] = `Bearer ${req.caller.token}`;
  if (req.body !== undefined) headers['content-type'] ??= 'application/json';
  return {
    id: headers['x-request-id'],
    method: req.method.toUpperCase(),
    path: q < 0 ? req.path : req.path.slice(0, q),
    ...(q < 0 ? {} : { query: req.path.slice(q + 1) }),
    headers,
    ...(req.body !== undefined ? { body: req.body } : {}),
  };
}

/** The decision's headline: status, reason, rule, and a denial rendered exactly as Envoy gets it. */
function outcome(decision: Decision): Pick<Explanation, 'decision' | 'status' | 'reason' | 'rule' | 'message' | 'response'> {
  if (decision.allow !== undefined) {
    const authz = decision.allow.authz;
    return {
      decision: 'allow',
      status: 200,
      reason: 'allowed',
      ...(authz !== undefined ? { rule: authz.matchedRule ?? 'default' } : {}),
    };
  }
  const denial = decision.deny;
  const denied = toCheckResponse(decision).denied_response;
  const headers: Record<string, string> = {};
  for (const h of denied?.headers ?? []) headers[h.header.key] = h.header.value ?? '';
  return {
    decision: isAnswer(denial) ? 'answer' : 'deny',
    status: denial.status,
    reason: denial.reason,
    ...(denial.rule !== undefined ? { rule: denial.rule } : {}),
    message: denial.message,
    response: { headers, body: JSON.parse(String(denied?.body ?? '{}')) as unknown },
  };
}

/** Every window and budget of the one admission, named by its limit or budget. */
function limitLines(config: Config, admission: PeekStore['admissions'][number], now: number): LimitLine[] {
  const { request, windows, budgets, result } = admission;
  const budgetNames = new Map(
    config.tokenBudgets.flatMap((b) => {
      const window = periodWindow(b.period, b.timeZone, now);
      return [
        [budgetKey(b, window), budgetName(b)] as const,
        // A cost budget's counter, in micro-dollars.
        [budgetKey(b, window, 'usd'), `${budgetName(b)} (USD micro-dollars)`] as const,
      ];
    }),
  );
  const refused = result.refusedBy;
  const lines: LimitLine[] = request.windows.map((w, i) => {
    const state = result.windows[i];
    const count = windows[i];
    return {
      kind: 'rate-limit',
      name: limitName(w.key),
      key: w.key,
      limit: w.limit,
      ...(count !== undefined ? { current: count.count } : {}),
      remaining: state?.remaining ?? 0,
      ...(state !== undefined ? { resetMs: state.resetMs } : {}),
      refused: refused?.kind === 'window' && refused.index === i,
    };
  });
  for (const [i, b] of request.budgets.entries()) {
    // A concurrency limit's slots (`cc:<limit>[:<value>]`): its in-flight requests are reserved.
    if (b.key.startsWith('cc:')) {
      lines.push({
        kind: 'concurrency',
        name: limitName(b.key),
        key: b.key,
        limit: b.limit,
        current: budgets[i]?.reserved ?? 0,
        remaining: result.remaining[i] ?? 0,
        refused: refused?.kind === 'budget' && refused.index === i,
      });
      continue;
    }
    lines.push({
      kind: 'budget',
      name: budgetNames.get(b.key) ?? b.key,
      key: b.key,
      limit: b.limit,
      current: budgets[i]?.used ?? 0,
      reserved: budgets[i]?.reserved ?? 0,
      wouldReserve: result.reserved[i] ?? 0,
      remaining: result.remaining[i] ?? 0,
      refused: refused?.kind === 'budget' && refused.index === i,
    });
  }
  return lines;
}

/** A rate limit's name from its bucket key `rl:` or `cc:<name>[:<value>]` (limits/rate-limit.ts). */
function limitName(key: string): string {
  const [, name = key] = key.split(':');
  try {
    return decodeURIComponent(name);
  } catch {
    return name;
  }
}
