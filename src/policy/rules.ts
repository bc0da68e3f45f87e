/**
 * The `authorization:` block compiled once and evaluated per request: rules in order, the
 * first matching enforced rule decides, otherwise `default`.
 *
 * Shadow mode, decided here once for the whole product:
 * - A rule with `mode: shadow` never decides. When it matches before the deciding rule and its
 *   action is `deny`, the would-be denial is recorded and evaluation CONTINUES, so an enforced
 *   rule further down still decides as if the shadow rule were absent. That is what an operator
 *   trialling a new deny rule wants to see: "these allowed requests would have been refused".
 *   A matching shadow `allow` rule is skipped the same way and records nothing.
 * - `authorization.mode: shadow` makes the whole block a dry run: the decision is computed as
 *   in enforce mode, and a deny is turned into an allow that records the denial.
 * Only allowed requests carry a would-be denial; a request that is really denied is counted
 * once, as a denial.
 */
import type { AuthorizationConfig, AuthorizationRule } from '../config/schema.js';
import type { ReasonCode } from '../domain/errors.js';
import type { Identity } from '../domain/identity.js';
import { trustedClaim } from '../identity/claims.js';
import { compileMatch, type CompiledMatch, type MatchInput, type MatchMiss } from './match.js';

/** Name reported for decisions made by `authorization.default`. */
export const DEFAULT_RULE = 'default';

/** A refusal by the policy, before it is shaped into an HTTP denial. */
export interface PolicyDenial {
  /** The rule name, or `default`. */
  readonly rule: string;
  readonly reason: Extract<ReasonCode, 'access_denied' | 'model_not_allowed'>;
  readonly message: string;
}

interface OutcomeBase {
  /** The deciding rule, or null when `default` decided. */
  readonly matchedRule: string | null;
  /** Claim values that made the deciding rule match (empty for `default`). */
  readonly claimsUsed: Readonly<Record<string, string>>;
}

/**
 * The effective decision. In shadow mode `allowed` is true even when the policy would deny;
 * `shadowDenied` then says which rule (or shadow rule) would have refused it.
 */
export type PolicyOutcome =
  | (OutcomeBase & { readonly allowed: true; readonly shadowDenied?: PolicyDenial })
  | (OutcomeBase & { readonly allowed: false; readonly denial: PolicyDenial });

interface CompiledRule {
  readonly rule: AuthorizationRule;
  readonly match: CompiledMatch;
}

/** An `authorization:` block with every rule compiled. */
export interface CompiledPolicy {
  readonly config: AuthorizationConfig;
  readonly rules: readonly CompiledRule[];
  /**
   * Endpoints with indirect model work need an explicit allow: true when some rule judges
   * models or token budgets are configured, since such work escapes both.
   */
  readonly governsIndirect: boolean;
  /** The token claim paths the rules match (besides the mapped user, groups and tenant). */
  readonly claimPaths: readonly string[];
}

/**
 * Compile every rule of `config` (call once per config). `budgets`: whether token budgets are
 * configured (they, like model rules, would be walked around by indirect model work).
 */
export function compilePolicy(config: AuthorizationConfig, opts: { budgets?: boolean } = {}): CompiledPolicy {
  return {
    config,
    rules: config.rules.map((rule) => ({ rule, match: compileMatch(rule.match) })),
    governsIndirect: opts.budgets === true || config.rules.some((r) => r.match.models !== undefined),
    claimPaths: [
      ...new Set(config.rules.flatMap((r) => Object.keys(r.match.claims)).filter((k) => !MAPPED.has(k))),
    ],
  };
}

/** Claim keys that name the provider's mapping rather than a path in the token. */
const MAPPED: ReadonlySet<string> = new Set(['user', 'groups', 'tenant']);

/**
 * The caller's values of the claims the rules read, keyed by their paths (what the response
 * side needs to judge a model list the same way; handoff/handoff.ts). An `email` the IdP
 * marks unverified is left out, as everywhere (identity/claims.ts trustedClaim).
 */
export function ruleClaims(policy: CompiledPolicy, identity: Identity): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const path of policy.claimPaths) {
    const value = trustedClaim(identity.claims, path);
    if (value !== undefined) out[path] = value;
  }
  return out;
}

/** The pseudo-rule named when an indirect endpoint is refused for want of an explicit allow. */
export const INDIRECT_RULE = 'indirect-endpoint';

function indirectDenial(input: MatchInput): PolicyDenial {
  return {
    rule: INDIRECT_RULE,
    reason: 'access_denied',
    message:
      `${input.method.toUpperCase()} ${input.path.slice(0, 128)} makes the provider run models that the gateway ` +
      'cannot judge or meter; it needs an authorization rule that allows it explicitly',
  };
}

// Model ids are caller-supplied and echoed in the error message: keep them short.
const MAX_MODEL_IN_MESSAGE = 128;

function ruleDenial(rule: AuthorizationRule, model: string | undefined): PolicyDenial {
  if (rule.match.models !== undefined && model !== undefined) {
    const shown = JSON.stringify(model.slice(0, MAX_MODEL_IN_MESSAGE));
    return {
      rule: rule.name,
      reason: 'model_not_allowed',
      message: `model ${shown} is not allowed for this caller (rule "${rule.name}")`,
    };
  }
  return {
    rule: rule.name,
    reason: 'access_denied',
    message: `access denied by rule "${rule.name}"`,
  };
}

const DEFAULT_DENIAL: PolicyDenial = {
  rule: DEFAULT_RULE,
  reason: 'access_denied',
  message: 'access denied: no authorization rule allows this request (default: deny)',
};

/**
 * One rule as an evaluation met it, for an explanation (`tollgate explain`): every rule up to
 * the deciding one, in order. A live Check passes no observer and pays nothing for this seam.
 */
export type RuleTrace =
  | { readonly rule: string; readonly verdict: 'no-match'; readonly miss: MatchMiss }
  | {
      readonly rule: string;
      /** `decided`: this rule decides; `shadow`: it matched but, in shadow mode, does not. */
      readonly verdict: 'decided' | 'shadow';
      readonly action: AuthorizationRule['action'];
      readonly claimsUsed: Readonly<Record<string, string>>;
    };

/** Told of each rule an evaluation looks at (explanations only). */
export type PolicyObserver = (trace: RuleTrace) => void;

/** What the policy says when enforced, before shadow handling. */
type Decided =
  | (OutcomeBase & { readonly allow: true })
  | (OutcomeBase & { readonly allow: false; readonly denial: PolicyDenial });

/** Evaluate the compiled policy for one request. */
export function evaluatePolicy(policy: CompiledPolicy, input: MatchInput, observe?: PolicyObserver): PolicyOutcome {
  let shadowRule: PolicyDenial | undefined;
  let decided: Decided | undefined;

  for (const { rule, match } of policy.rules) {
    const result = observe
      ? match(input, (miss) => observe({ rule: rule.name, verdict: 'no-match', miss }))
      : match(input);
    if (!result.matched) continue;
    observe?.({
      rule: rule.name,
      verdict: rule.mode === 'shadow' ? 'shadow' : 'decided',
      action: rule.action,
      claimsUsed: result.claimsUsed,
    });
    if (rule.mode === 'shadow') {
      if (rule.action === 'deny' && shadowRule === undefined)
        shadowRule = ruleDenial(rule, input.model);
      continue;
    }
    decided =
      rule.action === 'allow'
        ? { allow: true, matchedRule: rule.name, claimsUsed: result.claimsUsed }
        : {
            allow: false,
            denial: ruleDenial(rule, input.model),
            matchedRule: rule.name,
            claimsUsed: result.claimsUsed,
          };
    break;
  }
  // `default: allow` never opens indirect model work where model rules or budgets would be
  // walked around by it (DESIGN 1.8): only a rule that matched the request can.
  decided ??=
    policy.config.default === 'allow' && !(input.indirect === true && policy.governsIndirect)
      ? { allow: true, matchedRule: null, claimsUsed: {} }
      : {
          allow: false,
          denial: policy.config.default === 'allow' ? indirectDenial(input) : DEFAULT_DENIAL,
          matchedRule: null,
          claimsUsed: {},
        };

  const { matchedRule, claimsUsed } = decided;
  if (decided.allow) {
    return {
      allowed: true,
      matchedRule,
      claimsUsed,
      ...(shadowRule !== undefined ? { shadowDenied: shadowRule } : {}),
    };
  }
  const { denial } = decided;
  if (policy.config.mode === 'shadow') {
    return { allowed: true, shadowDenied: denial, matchedRule, claimsUsed };
  }
  return { allowed: false, denial, matchedRule, claimsUsed };
}

// Configs are frozen and replaced wholesale on reload, so the config object itself is a safe
// cache key; the WeakMap lets an old config's compiled rules be collected.
const compiled = new WeakMap<AuthorizationConfig, CompiledPolicy>();

function policyFor(config: AuthorizationConfig): CompiledPolicy {
  let policy = compiled.get(config);
  if (policy === undefined) {
    policy = compilePolicy(config);
    compiled.set(config, policy);
  }
  return policy;
}

/** The path and method a model listing is judged against: a chat completion is the common use. */
export const MODEL_PROBE = { path: '/v1/chat/completions', method: 'POST' } as const;

/**
 * Filter `GET /v1/models` for one caller: keep each candidate model id whose chat completion
 * (`POST /v1/chat/completions` with that model) this caller would be allowed. Uses the
 * effective decision, so in shadow mode every model is listed, as every model would be served.
 */
export function allowedModels(
  config: AuthorizationConfig | CompiledPolicy,
  identity: Identity,
  candidates: readonly string[],
): string[] {
  const policy = 'config' in config ? config : policyFor(config);
  return candidates.filter(
    (model) => evaluatePolicy(policy, { ...MODEL_PROBE, model, identity }).allowed,
  );
}
