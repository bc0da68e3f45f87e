/**
 * Stable reason codes. The same string is sent in `x-tollgate-reason`, written in the audit
 * line's `reason` field and used as the `reason` label of the decision metric. Never rename
 * one; add new ones and record them in CHANGELOG.md.
 */
export type ReasonCode =
  // 401: identity
  | 'missing_token'
  | 'malformed_token'
  | 'token_too_large'
  | 'unknown_issuer'
  | 'alg_not_allowed'
  | 'unknown_kid'
  | 'bad_signature'
  | 'token_expired'
  | 'token_not_yet_valid'
  | 'bad_audience'
  | 'missing_claim'
  | 'jwks_unavailable'
  // 403: policy
  | 'access_denied'
  | 'model_not_allowed'
  | 'model_not_priced'
  // 400 / 413: request
  | 'invalid_body'
  | 'invalid_path'
  | 'invalid_model'
  | 'body_too_large'
  // 429
  | 'rate_limited'
  | 'token_rate_limited'
  | 'concurrency_limited'
  | 'budget_exhausted'
  // 503 / 500
  | 'store_unavailable'
  | 'internal_error'
  // 200: not a refusal — Tollgate answers the request itself (`GET /v1/tollgate/whoami`)
  | 'whoami';

/** Base class for every failure Tollgate raises on purpose; callers switch on `code`. */
export class TollgateError extends Error {
  readonly code: ReasonCode;
  constructor(code: ReasonCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TollgateError';
    this.code = code;
  }
}

/** A token that did not verify: always answered with 401. */
export class AuthenticationError extends TollgateError {
  constructor(code: ReasonCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'AuthenticationError';
  }
}
