/**
 * What the Check decides, in plain TypeScript: a Decision is an Allowance or a Denial. Nothing
 * here knows Envoy; the edge renders a Decision as a CheckResponse.
 */
import type { ReasonCode } from './errors.js';
import type { Identity } from './identity.js';

/**
 * A refusal, shaped once and rendered by the edge into Envoy's denied response. One kind is not
 * a refusal: an *answer* (status 200, reason `whoami`) is a response Tollgate writes itself,
 * which Envoy's ext_authz can only send as a "denied" local reply (see `isAnswer`).
 */
export interface Denial {
  readonly status: 200 | 400 | 401 | 403 | 413 | 429 | 500 | 503;
  readonly reason: ReasonCode;
  /** OpenAI envelope fields. */
  readonly type: string;
  readonly code: string;
  readonly message: string;
  /** Extra response headers (lower-case names), beside content-type and x-tollgate-reason. */
  readonly headers: Readonly<Record<string, string>>;
  /** The rule or limit that caused it, for logs. */
  readonly rule?: string;
  /** Claim values that made the denying rule match (authorize stage), for the audit line. */
  readonly claimsUsed?: Readonly<Record<string, string>>;
  /** An answer's own JSON body, sent instead of the OpenAI error envelope. */
  readonly body?: string;
}

/** A Denial that answers the request (200, Tollgate's own body) rather than refusing it. */
export function isAnswer(denial: Denial): boolean {
  return denial.status === 200;
}

/** `allow`, `deny`, or `answer` (Tollgate answered the request itself): logs, metrics, spans. */
export function decisionKind(decision: Decision): 'allow' | 'deny' | 'answer' {
  if (decision.deny === undefined) return 'allow';
  return isAnswer(decision.deny) ? 'answer' : 'deny';
}

/** A denial that shadow mode recorded instead of enforcing (policy/rules.ts). */
export interface ShadowDenial {
  /** The rule that would have refused (`default`, `indirect-endpoint` or a rule's name). */
  readonly rule: string;
  readonly reason: ReasonCode;
}

/** Which rule decided an allowed request, and the claim values that made it match. */
export interface Authz {
  /** The deciding rule; null when `authorization.default` decided. */
  readonly matchedRule: string | null;
  readonly claimsUsed: Readonly<Record<string, string>>;
}

/** What an allowed request gets: header mutations toward upstream and downstream. */
export interface Allowance {
  readonly identity: Identity;
  /** Request headers to set (overwrite) toward the upstream. */
  readonly setHeaders: Readonly<Record<string, string>>;
  /** Request headers to remove toward the upstream. */
  readonly removeHeaders: readonly string[];
  /** Query parameters to remove toward the upstream (credentials riding in the query). */
  readonly removeQueryParams?: readonly string[];
  /** Headers added to the downstream response (x-ratelimit-*). */
  readonly responseHeaders: Readonly<Record<string, string>>;
  /** JSON-able metadata published as ext_authz dynamic metadata (read by ext_proc, access logs). */
  readonly metadata: Readonly<Record<string, unknown>>;
  /** The authorize step's outcome; absent where no policy ran (tests of other parts). */
  readonly authz?: Authz;
  /** Set when a shadow rule or shadow mode would have refused this request. */
  readonly shadowDenied?: ShadowDenial;
}

export type Decision =
  | { readonly allow: Allowance; readonly deny?: undefined }
  | { readonly deny: Denial; readonly allow?: undefined; readonly identity?: Identity };
