/**
 * The IdP side of a login, through openid-client (panva): discovery, the token responses turned
 * into a cache entry, refresh, revocation, and OAuth errors turned into sentences. No protocol
 * or crypto code of our own lives here; see docs/login.md for why that library.
 */
import * as client from 'openid-client';
import type { CachedLogin } from './cache.js';
import { checkIssuer, isLoopback, type LoginSettings } from './settings.js';

/** A login that failed for a reason the user can act on; `code` is the OAuth error when there is one. */
export class LoginError extends Error {
  readonly code: string | undefined;
  constructor(message: string, code?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LoginError';
    this.code = code;
  }
}

/** Seconds any one HTTP request to the IdP may take. */
const REQUEST_TIMEOUT_S = 15;

type IssuerRef = Pick<LoginSettings, 'issuer' | 'clientId'>;

/** Discovers the issuer (`/.well-known/openid-configuration`), checking it names itself the same. */
export async function discover(settings: IssuerRef): Promise<client.Configuration> {
  const url = checkIssuer(settings.issuer);
  const insecure = url.protocol === 'http:' && isLoopback(url.hostname);
  try {
    return await client.discovery(url, settings.clientId, undefined, client.None(), {
      timeout: REQUEST_TIMEOUT_S,
      ...(insecure ? { execute: [client.allowInsecureRequests] } : {}),
    });
  } catch (err) {
    throw new LoginError(`cannot use ${settings.issuer} as an OIDC issuer: ${reason(err)}`, oauthCode(err), { cause: err });
  }
}

/** The scope, resource and (for offline access) consent parameters of an authorization request. */
export function requestParameters(settings: Pick<LoginSettings, 'scope' | 'resource'>): Record<string, string> {
  return { scope: settings.scope, ...(settings.resource !== undefined ? { resource: settings.resource } : {}) };
}

/** What every grant returns, without the decrypted-response marker that differs between grants. */
export type TokenResponse = client.TokenEndpointResponse & client.TokenEndpointResponseHelpers;

/** A token endpoint response as a cache entry; `previous` supplies what a refresh may omit. */
export function toCached(settings: LoginSettings, res: TokenResponse, previous?: CachedLogin): CachedLogin {
  const now = Math.floor(Date.now() / 1000);
  const idToken = res.id_token ?? previous?.idToken;
  const refreshToken = res.refresh_token ?? previous?.refreshToken;
  let expiresAt: number | undefined;
  if (settings.token === 'id') {
    if (res.id_token === undefined) throw new LoginError('the IdP returned no ID token (is `openid` in the scope?) but the profile prints the ID token');
    const exp = res.claims()?.exp;
    expiresAt = typeof exp === 'number' ? exp : undefined;
  } else if (typeof res.expires_in === 'number') {
    expiresAt = now + res.expires_in;
  }
  return {
    version: 1,
    issuer: settings.issuer,
    clientId: settings.clientId,
    scope: typeof res.scope === 'string' && res.scope !== '' ? res.scope : settings.scope,
    ...(settings.resource !== undefined ? { resource: settings.resource } : {}),
    token: settings.token,
    accessToken: res.access_token,
    ...(idToken !== undefined ? { idToken } : {}),
    ...(refreshToken !== undefined ? { refreshToken } : {}),
    ...(expiresAt !== undefined ? { expiresAt } : {}),
    obtainedAt: now,
  };
}

export function settingsOf(login: CachedLogin, profile: string): LoginSettings {
  return {
    profile,
    issuer: login.issuer,
    clientId: login.clientId,
    scope: login.scope,
    ...(login.resource !== undefined ? { resource: login.resource } : {}),
    token: login.token,
  };
}

/** Uses the refresh token; a refused one (revoked, expired, reused) says to log in again. */
export async function refresh(login: CachedLogin, profile: string): Promise<CachedLogin> {
  if (login.refreshToken === undefined) {
    throw new LoginError(`the token of profile ${JSON.stringify(profile)} is expiring and the IdP issued no refresh token: run \`tollgate login${profileFlag(profile)}\``);
  }
  const settings = settingsOf(login, profile);
  const config = await discover(settings);
  try {
    const res = await client.refreshTokenGrant(config, login.refreshToken, login.resource !== undefined ? { resource: login.resource } : undefined);
    return toCached(settings, res, login);
  } catch (err) {
    if (err instanceof LoginError) throw err;
    const code = oauthCode(err);
    if (code === 'invalid_grant') {
      throw new LoginError(`the IdP refused the refresh token (revoked or expired: ${reason(err)}): run \`tollgate login${profileFlag(profile)}\``, code, { cause: err });
    }
    throw new LoginError(`refreshing the token failed: ${reason(err)}`, code, { cause: err });
  }
}

/** Revokes the refresh token (or the access token when there is none); false when the IdP offers no revocation. */
export async function revoke(login: CachedLogin, profile: string): Promise<boolean> {
  const config = await discover(settingsOf(login, profile));
  if (config.serverMetadata().revocation_endpoint === undefined) return false;
  const [token, hint] = login.refreshToken !== undefined ? [login.refreshToken, 'refresh_token'] : [login.accessToken, 'access_token'];
  try {
    await client.tokenRevocation(config, token, { token_type_hint: hint });
  } catch (err) {
    throw new LoginError(`the IdP did not revoke the token: ${reason(err)}`, oauthCode(err), { cause: err });
  }
  return true;
}

export function profileFlag(profile: string): string {
  return profile === 'default' ? '' : ` --profile ${profile}`;
}

/** The OAuth `error` of a response, when the failure is one. */
export function oauthCode(err: unknown): string | undefined {
  if (err instanceof client.ResponseBodyError || err instanceof client.AuthorizationResponseError) return err.error;
  return undefined;
}

/** One sentence for any failure of the library or the network. */
export function reason(err: unknown): string {
  if (err instanceof client.ResponseBodyError || err instanceof client.AuthorizationResponseError) {
    return err.error_description ? `${err.error}: ${err.error_description}` : err.error;
  }
  if (err instanceof client.ClientError) {
    const cause = err.cause instanceof Error ? ` (${err.cause.message})` : '';
    if (err.code === 'OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED') return `the discovery document names another issuer${cause}`;
    return `${err.message}${cause}`;
  }
  if (err instanceof Error) {
    const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
    return `${err.message}${cause}`;
  }
  return String(err);
}
