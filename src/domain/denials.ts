/**
 * Reason → HTTP status, OpenAI error type and code, and extra headers. The one place that
 * shapes a refusal, so every deny looks alike to SDKs and operators; edge/envelope.ts renders
 * it as the OpenAI error body.
 */
import type { ReasonCode } from './errors.js';
import type { Denial } from './decision.js';

interface Shape {
  readonly status: Denial['status'];
  readonly type: string;
  readonly code: string;
}

const SHAPES: Readonly<Record<ReasonCode, Shape>> = {
  missing_token: { status: 401, type: 'invalid_request_error', code: 'invalid_api_key' },
  malformed_token: { status: 401, type: 'invalid_request_error', code: 'invalid_api_key' },
  token_too_large: { status: 401, type: 'invalid_request_error', code: 'invalid_api_key' },
  unknown_issuer: { status: 401, type: 'invalid_request_error', code: 'invalid_api_key' },
  alg_not_allowed: { status: 401, type: 'invalid_request_error', code: 'invalid_api_key' },
  unknown_kid: { status: 401, type: 'invalid_request_error', code: 'invalid_api_key' },
  bad_signature: { status: 401, type: 'invalid_request_error', code: 'invalid_api_key' },
  token_expired: { status: 401, type: 'invalid_request_error', code: 'invalid_api_key' },
  token_not_yet_valid: { status: 401, type: 'invalid_request_error', code: 'invalid_api_key' },
  bad_audience: { status: 401, type: 'invalid_request_error', code: 'invalid_api_key' },
  missing_claim: { status: 401, type: 'invalid_request_error', code: 'invalid_api_key' },
  jwks_unavailable: { status: 401, type: 'invalid_request_error', code: 'invalid_api_key' },
  access_denied: { status: 403, type: 'permission_denied', code: 'access_denied' },
  model_not_allowed: { status: 403, type: 'permission_denied', code: 'model_not_allowed' },
  model_not_priced: { status: 403, type: 'permission_denied', code: 'model_not_priced' },
  invalid_body: { status: 400, type: 'invalid_request_error', code: 'invalid_body' },
  invalid_path: { status: 400, type: 'invalid_request_error', code: 'invalid_path' },
  invalid_model: { status: 400, type: 'invalid_request_error', code: 'invalid_model' },
  body_too_large: { status: 413, type: 'invalid_request_error', code: 'request_too_large' },
  rate_limited: { status: 429, type: 'requests', code: 'rate_limit_exceeded' },
  token_rate_limited: { status: 429, type: 'tokens', code: 'rate_limit_exceeded' },
  concurrency_limited: { status: 429, type: 'requests', code: 'rate_limit_exceeded' },
  budget_exhausted: { status: 429, type: 'insufficient_quota', code: 'insufficient_quota' },
  store_unavailable: { status: 503, type: 'server_error', code: 'service_unavailable' },
  internal_error: { status: 500, type: 'server_error', code: 'internal_error' },
  // Never an error envelope: the answer carries its own body (check/whoami.ts).
  whoami: { status: 200, type: 'answer', code: 'whoami' },
};

/** Quote a value for an RFC 6750 auth-param (no CR/LF, quotes and backslashes escaped). */
function quoteParam(value: string): string {
  return value.replace(/[\r\n]+/g, ' ').replace(/["\\]/g, (c) => `\\${c}`);
}

/**
 * Build a Denial for `reason`. 401s get `www-authenticate` per RFC 6750; extra headers
 * (retry-after, x-ratelimit-*, x-should-retry) are passed by the caller.
 * Every 401 carries the full challenge, the missing-token case included (DESIGN 1.4).
 */
export function deny(
  reason: ReasonCode,
  message: string,
  extra: { headers?: Readonly<Record<string, string>>; rule?: string } = {},
): Denial {
  const shape = SHAPES[reason];
  const headers: Record<string, string> = { ...extra.headers };
  if (shape.status === 401) {
    // DESIGN 1.4 lists the missing token in the same row, so it gets the same challenge.
    headers['www-authenticate'] =
      `Bearer realm="tollgate", error="invalid_token", error_description="${quoteParam(message)}"`;
  }
  return {
    status: shape.status,
    reason,
    type: shape.type,
    code: shape.code,
    message,
    headers,
    ...(extra.rule !== undefined ? { rule: extra.rule } : {}),
  };
}
