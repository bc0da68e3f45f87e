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
  return deepFreeze({
    provider: config.name,
    issuer: config.issuer,
    subject: sub ?? user,
    user,
    groups: claimStrings(getClaim(payload, config.claims.groups)),
    ...(tenant !== undefined ? { tenant } : {}),
    claims: payload,
    expiresAt: payload.exp as number,
  });
}
