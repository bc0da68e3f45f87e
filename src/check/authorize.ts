/**
 * Step `authorize`: ordered rules, first match wins, then `authorization.default`. The policy
 * itself (matching, shadow semantics, indirect endpoints) lives in `src/policy/`; this step
 * turns its outcome into a denial, or records which rule allowed the request and any denial
 * that shadow mode recorded instead of enforcing.
 */
import type { AuthorizationConfig } from '../config/schema.js';
import { deny } from '../domain/denials.js';
import type { Identity } from '../domain/identity.js';
import {
  allowedModels,
  compilePolicy,
  evaluatePolicy,
  ruleClaims,
  type CompiledPolicy,
  type PolicyObserver,
} from '../policy/rules.js';
import type { CheckStep, CheckState } from './step.js';

export class AuthorizeStep implements CheckStep {
  readonly name = 'authorize';
  readonly reported = true;
  private readonly policy: CompiledPolicy;
  private readonly observe: PolicyObserver | undefined;

  /**
   * Compiles every rule; build once per config. `budgets`: token budgets are configured, so
   * indirect model work needs an explicit allow even without model rules. `observe`: told of
   * each rule evaluated (`tollgate explain`; a live Check has none).
   */
  constructor(config: AuthorizationConfig, opts: { budgets?: boolean; observe?: PolicyObserver } = {}) {
    this.policy = compilePolicy(config, opts);
    this.observe = opts.observe;
  }

  run(check: CheckState) {
    const outcome = evaluatePolicy(this.policy, {
      path: check.request.path,
      method: check.request.method,
      identity: check.caller,
      indirect: check.catalogued.class === 'indirect',
      ...(check.model !== undefined ? { model: check.model } : {}),
    }, this.observe);
    if (!outcome.allowed) {
      const { denial } = outcome;
      const shaped = deny(denial.reason, denial.message, { rule: denial.rule });
      // The audit line names the claims that made the denying rule match, as for an allow.
      return Object.keys(outcome.claimsUsed).length > 0 ? { ...shaped, claimsUsed: outcome.claimsUsed } : shaped;
    }
    check.authz = { matchedRule: outcome.matchedRule, claimsUsed: outcome.claimsUsed };
    if (outcome.shadowDenied !== undefined) {
      check.shadowDenied = { rule: outcome.shadowDenied.rule, reason: outcome.shadowDenied.reason };
    }
    return undefined;
  }

  /** The claims the rules read, for the hand-off of a model list (handoff/handoff.ts). */
  ruleClaims(identity: Identity): Record<string, unknown> {
    return ruleClaims(this.policy, identity);
  }

  /** `allowedModels` with this step's compiled rules (no recompilation): `GET /v1/models`. */
  allowedModels(identity: Identity, candidates: readonly string[]): string[] {
    return allowedModels(this.policy, identity, candidates);
  }
}
