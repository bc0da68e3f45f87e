/**
 * Cheap structural checks on a bearer token before any key is looked up. Nothing here trusts
 * the token: it only decides whether the token is worth a signature check, and which
 * provider's rules to apply. Messages never contain the token itself.
 */
import { AuthenticationError } from '../domain/errors.js';
import { describeValue } from './claims.js';

/** The decoded, still unverified parts of a compact JWS. */
export interface UnverifiedToken {
  readonly header: Readonly<Record<string, unknown>>;
  readonly payload: Readonly<Record<string, unknown>>;
  /** The three base64url parts as the token spells them (the signature is checked over them). */
  readonly parts: { readonly header: string; readonly payload: string; readonly signature: string };
}

/**
 * The token of an `Authorization: Bearer …` header (scheme case-insensitive, RFC 7235).
 * Anything else is missing_token; the header's content is never echoed, since a client that
 * sends a raw API key would see it in the error.
 */
export function extractBearer(authorization: string | undefined): string {
  const value = authorization?.trim() ?? '';
  if (value === '') {
    throw new AuthenticationError(
      'missing_token',
      'no bearer token: send "Authorization: Bearer <OIDC token>"',
    );
  }
  const match = /^(\S+)(?:\s+([\s\S]*))?$/.exec(value);
  if (match?.[1]?.toLowerCase() !== 'bearer') {
    throw new AuthenticationError(
      'missing_token',
      'the Authorization header does not carry a Bearer token',
    );
  }
  const token = match[2]?.trim() ?? '';
  if (token === '')
    throw new AuthenticationError(
      'missing_token',
      'the Authorization header has an empty Bearer token',
    );
  return token;
}

const BASE64URL = /^[A-Za-z0-9_-]*$/;

function decodeJsonObject(part: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch {
    throw new AuthenticationError(
      'malformed_token',
      `token ${what} is not valid base64url-encoded JSON`,
    );
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new AuthenticationError('malformed_token', `token ${what} is not a JSON object`);
  }
  return value as Record<string, unknown>;
}

/** Split and decode a compact JWS; malformed_token unless it has three base64url parts. */
export function parseCompact(token: string): UnverifiedToken {
  const parts = token.split('.');
  if (parts.length !== 3) {
    const found =
      parts.length === 5
        ? ' (5: an encrypted JWE, which is not supported)'
        : ` (found ${parts.length})`;
    throw new AuthenticationError(
      'malformed_token',
      `token is not a JWT: expected three dot-separated parts${found}`,
    );
  }
  const [header = '', payload = '', signature = ''] = parts;
  if (!BASE64URL.test(header) || !BASE64URL.test(payload) || !BASE64URL.test(signature)) {
    throw new AuthenticationError(
      'malformed_token',
      'token is not a JWT: its parts must be base64url',
    );
  }
  if (header === '' || payload === '') {
    throw new AuthenticationError('malformed_token', 'token is not a JWT: empty header or payload');
  }
  return {
    header: decodeJsonObject(header, 'header'),
    payload: decodeJsonObject(payload, 'payload'),
    parts: { header, payload, signature },
  };
}

/** Header parameters by which a token would name or carry its own verification key. */
const KEY_CARRYING_HEADERS = ['jwk', 'jku', 'x5u', 'x5c'] as const;

/**
 * Refusals that hold for every provider, checked before the issuer is even looked up.
 * Embedded-key headers are reported as alg_not_allowed: like `none` and HS*, they are an
 * attempt to choose how the token is verified, which only the configuration may do.
 */
export function checkHeader(header: Readonly<Record<string, unknown>>): string {
  const alg = header.alg;
  if (typeof alg !== 'string' || alg === '') {
    throw new AuthenticationError('malformed_token', 'token header has no "alg"');
  }
  if (alg.toLowerCase() === 'none') {
    throw new AuthenticationError('alg_not_allowed', 'unsigned tokens (alg "none") are refused');
  }
  if (/^HS/i.test(alg)) {
    throw new AuthenticationError(
      'alg_not_allowed',
      `symmetric algorithm ${describeValue(alg)} is refused; tokens must be signed with the issuer's private key`,
    );
  }
  for (const name of KEY_CARRYING_HEADERS) {
    if (Object.hasOwn(header, name)) {
      throw new AuthenticationError(
        'alg_not_allowed',
        `token header carries its own key ("${name}"); keys come only from the issuer's JWKS`,
      );
    }
  }
  // jose understands one critical extension (b64), which a JWT must not use (RFC 7797 §7):
  // a token that marks any extension critical is refused, as jwtVerify refuses it.
  if (Object.hasOwn(header, 'crit')) {
    throw new AuthenticationError(
      'malformed_token',
      'token header marks extensions as critical ("crit"); none is supported',
    );
  }
  if (header.kid !== undefined && typeof header.kid !== 'string') {
    throw new AuthenticationError('malformed_token', 'token header "kid" is not a string');
  }
  return alg;
}
