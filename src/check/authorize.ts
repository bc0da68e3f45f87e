/**
 * The authorize stage: ordered rules, first match wins, then `authorization.default`.
 * The policy itself (matching, shadow semantics) lives in `src/policy/`; this stage only turns
 * its outcome into a denial or into metadata for the audit log.
 */
import type { AuthorizationConfig } from '../config/schema.js';
import {
  allowedModels,
  compilePolicy,
  evaluatePolicy,
  type CompiledPolicy,
} from '../policy/rules.js';
import { deny } from '../domain/denials.js';
import type { Identity } from '../domain/identity.js';
import type { RequestContext, Stage, StageResult } from './step.js';

export { allowedModels, DEFAULT_RULE } from '../policy/rules.js';

/**
 * Metadata an allowed request carries:
 * - `authz: { matchedRule, claimsUsed }` — the deciding rule (null = default) and the claim
 *   values that made it match, for the audit line;
 * - `shadowDenied: { rule, reason }` — present when a shadow rule or shadow mode would have
 *   denied this request; the caller logs and counts it.
 */
export class AuthorizeStage implements Stage {
  readonly name = 'authorize';
  private readonly policy: CompiledPolicy;

  /**
   * Compiles every rule; build once per config. `budgets`: token budgets are configured, so
   * indirect model work needs an explicit allow even without model rules.
   */
  constructor(config: AuthorizationConfig, opts: { budgets?: boolean } = {}) {
    this.policy = compilePolicy(config, opts);
  }

  run(ctx: RequestContext): Promise<StageResult> {
    const outcome = evaluatePolicy(this.policy, {
      path: ctx.request.path,
      method: ctx.request.method,
      identity: ctx.identity,
      indirect: ctx.endpoint.class === 'indirect',
      ...(ctx.model !== undefined ? { model: ctx.model } : {}),
    });
    if (!outcome.allowed) {
      const { denial } = outcome;
      const shaped = deny(denial.reason, denial.message, { rule: denial.rule });
      // The audit line names the claims that made the denying rule match, as for an allow.
      const claimsUsed = Object.keys(outcome.claimsUsed).length > 0 ? { claimsUsed: outcome.claimsUsed } : {};
      return Promise.resolve({ deny: { ...shaped, ...claimsUsed } });
    }
    const metadata: Record<string, unknown> = {
      authz: { matchedRule: outcome.matchedRule, claimsUsed: outcome.claimsUsed },
    };
    if (outcome.shadowDenied !== undefined) {
      metadata['shadowDenied'] = {
        rule: outcome.shadowDenied.rule,
        reason: outcome.shadowDenied.reason,
      };
    }
    return Promise.resolve({ ok: { metadata } });
  }

  /** `allowedModels` with this stage's compiled rules (no recompilation). */
  allowedModels(identity: Identity, candidates: readonly string[]): string[] {
    return allowedModels(this.policy, identity, candidates);
  }
}
