/**
 * A login over time: the token `tollgate token` prints, refreshed before it expires, and the end
 * of a login (`tollgate logout`).
 */
import { deleteLogin, readLogin, withProfileLock, writeLogin, type CachedLogin } from './cache.js';
import { REFRESH_MARGIN_S } from '../../domain/identity.js';
import { LoginError, profileFlag, refresh, revoke } from './oidc.js';

export { REFRESH_MARGIN_S };

export function printedToken(login: CachedLogin): string {
  if (login.token === 'id') {
    if (login.idToken === undefined) throw new LoginError('the login has no ID token: run `tollgate login` again');
    return login.idToken;
  }
  return login.accessToken;
}

export function needsRefresh(login: CachedLogin, nowS = Date.now() / 1000): boolean {
  return login.expiresAt !== undefined && login.expiresAt - nowS < REFRESH_MARGIN_S;
}

/**
 * The profile's current token, refreshed (and the cache rewritten) when it is about to expire;
 * undefined when the profile has no login. The check and the refresh happen under the profile's
 * lock, so parallel callers refresh once and all print the new token.
 */
export async function freshToken(profile: string, warn: (line: string) => void): Promise<string | undefined> {
  const cached = await readLogin(profile);
  if (cached === undefined) return undefined;
  if (!needsRefresh(cached)) return printedToken(cached);
  return withProfileLock(profile, async () => {
    const current = await readLogin(profile);
    if (current === undefined) throw new LoginError(`the login of profile ${JSON.stringify(profile)} was removed: run \`tollgate login${profileFlag(profile)}\``);
    if (!needsRefresh(current)) return printedToken(current);
    let renewed: CachedLogin;
    try {
      renewed = await refresh(current, profile);
    } catch (err) {
      // An IdP that cannot be reached is no reason to fail while the token still works; a
      // refused refresh token (invalid_grant) is: the login is over.
      const left = (current.expiresAt ?? 0) - Date.now() / 1000;
      if (err instanceof LoginError && err.code !== 'invalid_grant' && left > STILL_USABLE_S) {
        warn(`tollgate: warning: ${err.message}; printing the current token (${Math.floor(left)} s left)`);
        return printedToken(current);
      }
      throw err;
    }
    await writeLogin(profile, renewed);
    return printedToken(renewed);
  });
}

/** A token with at least this left is still printed when the refresh cannot reach the IdP. */
const STILL_USABLE_S = 5;

export type LogoutResult = 'revoked' | 'deleted' | 'none';

/**
 * Revokes at the IdP when it offers revocation, then deletes the cache entry in any case; a
 * failed revocation is reported after the local copy is gone.
 */
export async function logout(profile: string): Promise<LogoutResult> {
  return withProfileLock(profile, async () => {
    const login = await readLogin(profile).catch(() => undefined);
    if (login === undefined) {
      return (await deleteLogin(profile)) ? 'deleted' : 'none';
    }
    let revoked: boolean;
    try {
      revoked = await revoke(login, profile);
    } catch (err) {
      await deleteLogin(profile);
      throw err;
    }
    await deleteLogin(profile);
    return revoked ? 'revoked' : 'deleted';
  });
}
