/**
 * Plain-TypeScript shapes of the decision pipeline. Nothing here knows Envoy: the edge
 * adapters convert CheckRequest → GatewayRequest and Decision → CheckResponse.
 */
import type { ReasonCode } from './errors.js';

/** An HTTP request as the gateway sees it at admission. */
export interface GatewayRequest {
  /** Envoy's x-request-id (or a generated id). */
  readonly id: string;
  readonly method: string;
  /** Path without the query string, as Envoy sent it (canonical only once checked). */
  readonly path: string;
  /** The query string without its `?`, when the request target has one. */
  readonly query?: string;
  /** Lower-case header names; repeated headers comma-joined by Envoy. */
  readonly headers: Readonly<Record<string, string>>;
  /**
   * Request body as buffered by Envoy, when any: bytes when Envoy packs it as bytes (our
   * bootstraps do, so invalid UTF-8 can be refused), text otherwise.
   */
  readonly body?: string | Buffer;
  /** Source IP when known. */
  readonly sourceIp?: string;
}

/** The verified caller. */
export interface Identity {
  readonly provider: string;
  readonly issuer: string;
  readonly subject: string;
  /** Value of the provider's `claims.user` mapping (falls back to `sub`). */
  readonly user: string;
  readonly groups: readonly string[];
  readonly tenant?: string;
  /** The verified payload, for claim-path lookups. */
  readonly claims: Readonly<Record<string, unknown>>;
  /** Token expiry, epoch seconds. */
  readonly expiresAt: number;
}

/** A refusal, shaped once and rendered by the edge into Envoy's denied response. */
export interface Denial {
  readonly status: 400 | 401 | 403 | 413 | 429 | 500 | 503;
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
}

export type Decision =
  | { readonly allow: Allowance; readonly deny?: undefined }
  | { readonly deny: Denial; readonly allow?: undefined; readonly identity?: Identity };
