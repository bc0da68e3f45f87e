/**
 * The decision audit line: one JSON object per Check, built from the request, the decision and
 * its timings. Built from named fields only — never from headers or the body — so the token,
 * the upstream key and the prompt cannot reach the log, whatever a caller sends.
 * docs/observability.md is the field reference.
 */
import { decisionKind, type Decision } from '../domain/decision.js';
import type { InboundRequest } from '../domain/request.js';
import type { Identity } from '../domain/identity.js';

/** Name reported as `rule` when no rule matched and `authorization.default` decided. */
const DEFAULT_RULE = 'default';

/** The deciding rule and the claim values that made it match, allowed or denied. */
function authzOf(decision: Decision): {
  rule?: string;
  claimsUsed?: Readonly<Record<string, string>>;
} {
  const { rule, claimsUsed } = decision.deny
    ? decision.deny
    : decision.allow.authz === undefined
      ? {}
      : { rule: decision.allow.authz.matchedRule ?? DEFAULT_RULE, claimsUsed: decision.allow.authz.claimsUsed };
  return {
    ...(rule !== undefined ? { rule } : {}),
    ...(claimsUsed !== undefined ? { claimsUsed } : {}),
  };
}

function emailOf(identity: Identity | undefined): string | undefined {
  const email = identity?.claims['email'];
  return typeof email === 'string' ? email : undefined;
}

const round3 = (ms: number): number => Math.round(ms * 1000) / 1000;

export interface AuditContext {
  readonly model: string | undefined;
  readonly latencyMs: number;
  /** Milliseconds per stage (authenticate, authorize, admit, …) that ran. */
  readonly stages: Readonly<Record<string, number>>;
  /** Present when tracing is on, to join the line to its trace. */
  readonly traceId?: string;
}

/** The fields of the decision line (pino adds time, level, service and msg). */
export function decisionLine(
  request: InboundRequest,
  decision: Decision,
  c: AuditContext,
): Record<string, unknown> {
  const identity = decision.allow ? decision.allow.identity : decision.identity;
  const denial = decision.deny;
  const stages: Record<string, number> = {};
  for (const [name, ms] of Object.entries(c.stages)) stages[name] = round3(ms);
  return {
    audit: 'decision',
    requestId: request.id,
    ...(c.traceId !== undefined ? { traceId: c.traceId } : {}),
    provider: identity?.provider,
    subject: identity?.subject,
    user: identity?.user,
    email: emailOf(identity),
    tenant: identity?.tenant,
    groups: identity?.groups,
    method: request.method,
    path: request.path,
    model: c.model,
    // `answer`: Tollgate answered the request itself (whoami), nothing went upstream.
    decision: decisionKind(decision),
    status: denial?.status ?? 200,
    reason: denial?.reason ?? 'allowed',
    ...authzOf(decision),
    // A shadow rule or `authorization.mode: shadow` would have refused this allowed request.
    shadowDenied: decision.allow?.shadowDenied,
    latencyMs: round3(c.latencyMs),
    stages,
  };
}

/**
 * `logging.sampleAllowed`: denials and shadow denials are always written; a plain allow with
 * probability `sample`.
 */
export function shouldWrite(decision: Decision, sample: number, random: () => number): boolean {
  if (decision.deny || sample >= 1) return true;
  if (decision.allow?.shadowDenied !== undefined) return true;
  return sample > 0 && random() < sample;
}
