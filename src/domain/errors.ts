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
  // 400 / 413: request
  | 'invalid_body'
  | 'invalid_path'
  | 'invalid_model'
  | 'body_too_large'
  // 429
  | 'rate_limited'
  | 'budget_exhausted'
  // 503 / 500
  | 'store_unavailable'
  | 'internal_error';

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

/** One problem in a configuration file. */
export interface ConfigProblem {
  /** Dotted path, e.g. `authentication[0].provider.issuer`. */
  readonly path: string;
  readonly message: string;
  /** 1-based line in the file when known. */
  readonly line?: number;
}

/** A configuration file that failed validation; carries every problem found. */
export class ConfigError extends Error {
  readonly problems: readonly ConfigProblem[];
  readonly file: string | undefined;
  constructor(problems: readonly ConfigProblem[], file?: string) {
    super(formatProblems(problems, file));
    this.name = 'ConfigError';
    this.problems = problems;
    this.file = file;
  }
}

export function formatProblems(problems: readonly ConfigProblem[], file?: string): string {
  const where = file ?? 'config';
  const lines = problems.map(
    (p) => `  ${where}${p.line !== undefined ? `:${p.line}` : ''}: ${p.path || '(root)'}: ${p.message}`,
  );
  return `invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${lines.join('\n')}`;
}
