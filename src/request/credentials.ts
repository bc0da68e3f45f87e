/**
 * The caller's token never leaves (DESIGN 1.2, 1.8). `Authorization` is replaced by the
 * upstream key (respond.ts); this finds every other place a credential can ride toward the
 * upstream: headers that carry API keys or sessions, query parameters that name keys, and any
 * header or query value holding the verified token itself. A token in the path or the body
 * cannot be cut out by ext_authz, so the request is refused instead.
 */
import type { Denial } from '../domain/decision.js';
import type { InboundRequest } from '../domain/request.js';
import { deny } from '../domain/denials.js';

/**
 * Headers removed from every request toward the upstream: other API-key conventions (Azure,
 * Anthropic-style, Google), proxy and cookie credentials, and method overrides (a framework
 * that honours them would run a POST the gateway judged as a GET).
 */
export const CREDENTIAL_HEADERS: readonly string[] = Object.freeze([
  'api-key',
  'x-api-key',
  'x-goog-api-key',
  'proxy-authorization',
  'cookie',
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
]);

/** Query parameters removed from every request: the usual names of keys and tokens. */
export const CREDENTIAL_PARAMS: ReadonlySet<string> = new Set([
  'api-key',
  'api_key',
  'apikey',
  'key',
  'access_token',
  'token',
  'id_token',
]);

/** Headers Tollgate sets itself or Envoy needs; never removed by the scan. */
const KEPT = new Set(['authorization', ':path', ':authority', ':method', ':scheme', 'host']);

export interface CredentialRemovals {
  /** Request headers to remove toward the upstream (besides the static list). */
  readonly headers: readonly string[];
  /** Query parameter names to remove. */
  readonly params: readonly string[];
}

const NONE: CredentialRemovals = Object.freeze({ headers: [], params: [] });

function decodeParam(value: string): string {
  try {
    return decodeURIComponent(value.replace(/\+/g, ' '));
  } catch {
    return value;
  }
}

/** Headers and query parameters of `request` that carry `token` or a key by name. */
export function credentialRemovals(request: InboundRequest, token: string): CredentialRemovals {
  const headers: string[] = [];
  for (const [name, value] of Object.entries(request.headers)) {
    if (!KEPT.has(name) && value.includes(token)) headers.push(name);
  }
  const params: string[] = [];
  if (request.query !== undefined && request.query !== '') {
    for (const pair of request.query.split('&')) {
      const eq = pair.indexOf('=');
      const rawName = eq < 0 ? pair : pair.slice(0, eq);
      const name = decodeParam(rawName);
      const value = eq < 0 ? '' : decodeParam(pair.slice(eq + 1));
      if (
        CREDENTIAL_PARAMS.has(name.toLowerCase()) ||
        value.includes(token) ||
        name.includes(token)
      ) {
        // Named both as sent and decoded: what Envoy compares against is its own business.
        params.push(rawName);
        if (name !== rawName) params.push(name);
      }
    }
  }
  return headers.length === 0 && params.length === 0
    ? NONE
    : { headers, params: [...new Set(params)] };
}

/** A refusal when the token rides where it cannot be removed: the path or the body. */
export function tokenInRequest(request: InboundRequest, token: string): Denial | undefined {
  if (request.path.includes(token))
    return deny(
      'invalid_path',
      "the request path carries the caller's token; it would reach the upstream",
    );
  const body = request.body;
  if (body !== undefined && body.includes(token))
    return deny(
      'invalid_body',
      "the request body carries the caller's token; it would reach the upstream",
    );
  return undefined;
}
