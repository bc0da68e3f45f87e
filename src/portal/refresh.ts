/**
 * A portal session over time: its token refreshed when it has less than REFRESH_MARGIN_S left
 * (the same margin as `tollgate token`), through the refresh token the session keeps server-side.
 * The new token is verified by the Check's authenticator and must name the same provider and
 * subject as the session; anything else (a refused refresh token, an IdP that cannot be reached,
 * another identity) ends the session. Concurrent requests of one session share one refresh.
 */
import type { IdentityVerifier } from '../check/authenticate.js';
import { REFRESH_MARGIN_S, type Identity } from '../domain/identity.js';
import type { Logger } from '../telemetry/logger.js';
import type { SignedIn } from './oidc.js';
import type { ExpiringMap } from './session.js';

/** A signed-in developer. The tokens stay server-side; only the copy button's POST returns `token`. */
export interface PortalSession {
  readonly identity: Identity;
  readonly token: string;
  /** Never sent to the browser nor logged. */
  readonly refreshToken?: string;
  readonly csrf: string;
}

export interface RefresherDeps {
  readonly sessions: ExpiringMap<PortalSession>;
  readonly refresh: (refreshToken: string) => Promise<SignedIn>;
  readonly verifier: () => IdentityVerifier;
  readonly logger: Logger;
  readonly now: () => number;
}

/** The session, fresh enough to hand out its token; `ended` when a refresh failed and the session is gone. */
export type FreshSession = { readonly session: PortalSession } | { readonly ended: string };

export function needsRefresh(session: PortalSession, nowMs: number): boolean {
  return session.refreshToken !== undefined && session.identity.expiresAt - nowMs / 1000 < REFRESH_MARGIN_S;
}

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

export class SessionRefresher {
  private readonly deps: RefresherDeps;
  private readonly inflight = new Map<string, Promise<FreshSession>>();

  constructor(deps: RefresherDeps) {
    this.deps = deps;
  }

  /** `session` as it is, or refreshed first when its token is about to expire (one refresh per session at a time). */
  fresh(id: string, session: PortalSession): Promise<FreshSession> {
    if (!needsRefresh(session, this.deps.now())) return Promise.resolve({ session });
    let running = this.inflight.get(id);
    if (running === undefined) {
      running = this.renew(id, session).finally(() => this.inflight.delete(id));
      this.inflight.set(id, running);
    }
    return running;
  }

  private end(id: string, session: PortalSession, reason: string): FreshSession {
    this.deps.sessions.delete(id);
    this.deps.logger.warn({ user: session.identity.user, reason }, 'portal: session ended: its token could not be refreshed');
    return { ended: reason };
  }

  private async renew(id: string, session: PortalSession): Promise<FreshSession> {
    const { refreshToken } = session;
    if (refreshToken === undefined) return { session };
    let renewed: SignedIn;
    let identity: Identity;
    try {
      renewed = await this.deps.refresh(refreshToken);
      identity = await this.deps.verifier().authenticate(`Bearer ${renewed.token}`);
    } catch (err) {
      // Messages only: an error object could carry the IdP's response.
      return this.end(id, session, message(err));
    }
    const was = session.identity;
    if (identity.provider !== was.provider || identity.issuer !== was.issuer || identity.subject !== was.subject) {
      return this.end(id, session, 'the refreshed token names another identity');
    }
    const next: PortalSession = { ...session, identity, token: renewed.token, refreshToken: renewed.refreshToken ?? refreshToken };
    if (!this.deps.sessions.replace(id, next)) return { ended: 'the session ended while its token was refreshed' };
    this.deps.logger.info({ user: identity.user }, 'portal: token refreshed');
    return { session: next };
  }
}
