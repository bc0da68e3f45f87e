/**
 * Verified claims → Identity, per the provider's claim mapping.
 */
import type { JWTPayload } from 'jose';
import type { ProviderConfig } from '../config/schema.js';
import { AuthenticationError } from '../domain/errors.js';
import type { Identity } from '../domain/identity.js';
import { claimStrings, describeValue, getClaim, trustedClaim } from './claims.js';

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}

/** The user claim, except an e-mail the IdP itself marks unverified (Google, Keycloak). */
function userClaim(config: ProviderConfig, payload: JWTPayload): string | undefined {
  const value = trustedClaim(payload, config.claims.user);
  if (typeof value === 'string' && value !== '') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return undefined;
}

/**
 * The Identity of a verified payload under the provider's claim mapping: user = the user claim
 * (else `sub`), groups = the group claim as a list, tenant = the first value of the tenant claim.
 * Deeply frozen, because cached identities are shared by concurrent requests.
 */
export function toIdentity(config: ProviderConfig, payload: JWTPayload): Identity {
  const sub = typeof payload.sub === 'string' && payload.sub !== '' ? payload.sub : undefined;
  const user = userClaim(config, payload) ?? sub;
  if (user === undefined) {
    throw new AuthenticationError(
      'missing_claim',
      `token has neither a usable ${describeValue(config.claims.user)} claim nor a "sub" claim`,
    );
  }
  const [tenant] = claimStrings(getClaim(payload, config.claims.tenant));
  shareConfiguredStrings(config, payload);
  return deepFreeze({
    provider: config.name,
    issuer: config.issuer,
    subject: sub ?? user,
    user,
    // A copy of exact length: the list is built by appending, which leaves room for 16 more
    // elements, and a cached identity keeps it for the token's lifetime.
    groups: claimStrings(getClaim(payload, config.claims.groups)).slice(),
    ...(tenant !== undefined ? { tenant } : {}),
    claims: payload,
    expiresAt: payload.exp as number,
  });
}

/**
 * An `iss` equal to the provider's issuer and a string `aud` equal to one of its audiences (what
 * the verifier requires) become the configuration's own strings instead of the payload's
 * copies, so the verified-token cache does not hold the same URL once per token. No value
 * changes; anything else is left as it is.
 */
function shareConfiguredStrings(config: ProviderConfig, payload: JWTPayload): void {
  if (payload.iss === config.issuer) payload.iss = config.issuer;
  const aud = payload.aud;
  if (typeof aud === 'string') {
    const configured = config.audiences.find((a) => a === aud);
    if (configured !== undefined) payload.aud = configured;
  }
}
