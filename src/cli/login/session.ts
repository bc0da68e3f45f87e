/**
 * A login over time: the token `tollgate token` prints, refreshed before it expires, and the end
 * of a login (`tollgate logout`).
 */
import { deleteLogin, readLogin, withProfileLock, writeLogin, type CachedLogin } from './cache.js';
import { LoginError, profileFlag, refresh, revoke } from './oidc.js';

/** A token with less than this left is refreshed first, so a request made with it does not expire in flight. */
export const REFRESH_MARGIN_S = 60;

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
export async function freshToken(profile: string): Promise<string | undefined> {
  const cached = await readLogin(profile);
  if (cached === undefined) return undefined;
  if (!needsRefresh(cached)) return printedToken(cached);
  return withProfileLock(profile, async () => {
    const current = await readLogin(profile);
    if (current === undefined) throw new LoginError(`the login of profile ${JSON.stringify(profile)} was removed: run \`tollgate login${profileFlag(profile)}\``);
    if (!needsRefresh(current)) return printedToken(current);
    const renewed = await refresh(current, profile);
    await writeLogin(profile, renewed);
    return printedToken(renewed);
  });
}

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
