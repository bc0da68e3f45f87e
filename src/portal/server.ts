/**
 * The portal's HTTP listener (`portal.listen`): sign-in through the IdP, the "Me" page, the
 * token for the copy button, and sign-out. Sessions live in this process's memory
 * (session.ts); the page shows only the signed-in identity's own view (check/me.ts).
 *
 * Routes: `GET /` (sign-in page or Me), `GET /login`, `GET /callback`, `POST /logout` (CSRF),
 * `POST /token` (CSRF; JSON, no-store), `GET /portal.css`, `GET /portal.js`, `GET /healthz`.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { IdentityVerifier } from '../check/authenticate.js';
import { describeCaller, type MeSources } from '../check/me.js';
import type { DailyUsageConfig, PortalConfig } from '../config/schema.js';
import { monthToDate, userDays } from '../budgets/usage-report.js';
import type { UsageBook } from '../store/usage-book.js';
import { ownerScope, ownersData } from './owners.js';
import { dailySection, ownersPage } from './usage-html.js';
import type { Identity } from '../domain/identity.js';
import { listenHttp } from '../server/address.js';
import type { Logger } from '../telemetry/logger.js';
import { PORTAL_CSS, PORTAL_JS } from './assets.js';
import { errorPage, mePage, signInPage } from './html.js';
import type { PendingSignIn, PortalClient } from './oidc.js';
import { SessionRefresher, type PortalSession } from './refresh.js';
import { cookieName, csrfMatches, ExpiringMap, parseCookies, randomId, setCookie } from './session.js';

export type { PortalSession } from './refresh.js';

/** The live parts the portal reads per request (a reload swaps them). */
export interface PortalDeps {
  readonly config: PortalConfig;
  readonly client: PortalClient;
  readonly verifier: () => IdentityVerifier;
  readonly me: () => MeSources;
  /** The usage book and how it keeps days (the live store's). */
  readonly usage: () => { readonly book: UsageBook; readonly days: DailyUsageConfig };
  readonly logger: Logger;
  readonly now?: () => number;
}

export interface PortalServer {
  readonly url: string;
  readonly port: number;
  readonly sessions: ExpiringMap<PortalSession>;
  close(): Promise<void>;
}

/** Seconds a sign-in may take at the IdP. */
const SIGN_IN_TTL_S = 600;
const MAX_FORM_BYTES = 4096;
/** Rows per ranking on the Owners page. */
const OWNERS_TOP = 50;

const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');

const SECURITY_HEADERS = {
  'content-security-policy': CSP,
  'x-content-type-options': 'nosniff',
  // Not no-referrer: under it Chromium sends `Origin: null` on the page's own form POSTs.
  'referrer-policy': 'same-origin',
  'x-frame-options': 'DENY',
  'cache-control': 'no-store',
} as const;

function send(res: ServerResponse, status: number, type: string, body: string, extra: Record<string, string | string[]> = {}): void {
  res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': type, ...extra });
  res.end(body);
}

const html = (res: ServerResponse, status: number, body: string, extra: Record<string, string | string[]> = {}): void =>
  send(res, status, 'text/html; charset=utf-8', body, extra);

function redirect(res: ServerResponse, location: string, cookies: string[] = []): void {
  res.writeHead(303, { ...SECURITY_HEADERS, location, ...(cookies.length > 0 ? { 'set-cookie': cookies } : {}) });
  res.end();
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams | undefined> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_FORM_BYTES) return undefined;
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

export function portalHandler(deps: PortalDeps): { handle: (req: IncomingMessage, res: ServerResponse) => Promise<void>; sessions: ExpiringMap<PortalSession> } {
  const { config, client, logger } = deps;
  const now = deps.now ?? Date.now;
  const secure = config.publicUrl.startsWith('https:');
  const origin = new URL(config.publicUrl).origin;
  const SESSION = cookieName('tollgate_portal', secure);
  const PENDING = cookieName('tollgate_portal_signin', secure);
  const sessions = new ExpiringMap<PortalSession>({ ttlMs: config.sessionTtlSeconds * 1000, max: config.maxSessions, now });
  const pending = new ExpiringMap<PendingSignIn>({ ttlMs: SIGN_IN_TTL_S * 1000, max: config.maxSessions, now });
  const clear = (name: string): string => setCookie(name, '', { secure, maxAge: 0 });
  const refresher = new SessionRefresher({ sessions, refresh: (rt) => client.refresh(rt), verifier: deps.verifier, logger, now });
  const ENDED = 'Your session ended: its token could not be renewed. Sign in again.';

  /** The request's session with a token fresh enough to use; `ended` when its refresh failed. */
  async function freshSessionOf(req: IncomingMessage): Promise<{ id: string; session: PortalSession } | 'ended' | undefined> {
    const found = sessionOf(req);
    if (found === undefined) return undefined;
    const fresh = await refresher.fresh(found.id, found.session);
    return 'session' in fresh ? { id: found.id, session: fresh.session } : 'ended';
  }

  function sessionOf(req: IncomingMessage): { id: string; session: PortalSession } | undefined {
    const id = parseCookies(req.headers.cookie).get(SESSION);
    const session = sessions.get(id);
    return id !== undefined && session !== undefined ? { id, session } : undefined;
  }

  /** A state-changing POST: same origin (when the browser says) and the session's CSRF token. */
  function csrfOk(req: IncomingMessage, session: PortalSession, submitted: string | undefined): boolean {
    const from = req.headers.origin;
    if (from !== undefined && from !== origin) return false;
    return csrfMatches(session.csrf, submitted);
  }

  /** Reads for a page; a store that cannot be read is logged and answered with a 503 page. */
  async function read<T>(res: ServerResponse, what: () => Promise<T>): Promise<T | undefined> {
    const value = await what().catch((err: unknown) => {
      logger.warn({ reason: err instanceof Error ? err.message : String(err) }, 'portal: the store could not be read');
      return undefined;
    });
    if (value === undefined) html(res, 503, errorPage('Not available', 'Your counters cannot be read right now; try again shortly.'));
    return value;
  }

  /** My tokens per day this month, or nothing when no tallies are kept. */
  async function myDays(identity: Identity): Promise<string> {
    const { book, days } = deps.usage();
    if (days.keepDays === 0) return '';
    const { month, days: ids } = monthToDate(now(), days.timeZone);
    return dailySection(month.id, await userDays(book, identity.tenant ?? '', identity.user, ids));
  }

  async function home(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const found = await freshSessionOf(req);
    if (found === undefined) return html(res, 200, signInPage());
    if (found === 'ended') return html(res, 200, signInPage(ENDED), { 'set-cookie': [clear(SESSION)] });
    const identity = found.session.identity;
    const page = await read(res, async () => {
      const [view, usage] = await Promise.all([describeCaller(deps.me(), identity, now()), myDays(identity)]);
      return mePage(view, {
        csrf: found.session.csrf,
        usage,
        owners: ownerScope(config.owners, identity) !== undefined,
        ...(config.gatewayUrl !== undefined ? { gatewayUrl: config.gatewayUrl } : {}),
      });
    });
    if (page !== undefined) html(res, 200, page);
  }

  /** `GET /owners[?tenant=]`: only for `portal.owners`, and only the tenants their scope names. */
  async function owners(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const found = await freshSessionOf(req);
    if (found === undefined || found === 'ended') return redirect(res, '/');
    const scope = ownerScope(config.owners, found.session.identity);
    const refused = (): void => html(res, 403, errorPage('Not yours', 'The Owners view of that tenant is not open to you.'));
    if (scope === undefined) return refused();
    const asked = new URL(req.url ?? '/', 'http://portal').searchParams.get('tenant');
    const { book, days } = deps.usage();
    const me = deps.me();
    const data = await read(res, async () => (await ownersData({ config: me.config, counters: me.counters, book, days }, scope, asked, now())) ?? null);
    if (data === undefined) return;
    if (data === null) return refused();
    html(res, 200, ownersPage({ csrf: found.session.csrf, top: OWNERS_TOP, ...data }));
  }

  async function login(res: ServerResponse): Promise<void> {
    const started = await client.start().catch((err: unknown) => {
      logger.warn({ err: { message: err instanceof Error ? err.message : String(err) } }, 'portal: the IdP cannot be reached');
      return undefined;
    });
    if (started === undefined) return html(res, 502, errorPage('Sign-in unavailable', 'The identity provider cannot be reached; try again shortly.'));
    const id = pending.put(started.pending);
    redirect(res, started.url, [setCookie(PENDING, id, { secure, maxAge: SIGN_IN_TTL_S })]);
  }

  async function callback(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const pendingId = parseCookies(req.headers.cookie).get(PENDING);
    const started = pending.take(pendingId);
    // The raw query as the IdP sent it (`?code=…&state=…&iss=…`), for openid-client to check.
    const url = req.url ?? '';
    const query = url.includes('?') ? url.slice(url.indexOf('?')) : '';
    const cleared = [clear(PENDING)];
    if (started === undefined) {
      return html(res, 400, signInPage('That sign-in expired or was already used: sign in again.'), { 'set-cookie': cleared });
    }
    const params = new URLSearchParams(query);
    if (params.has('error')) {
      logger.info({ error: params.get('error') }, 'portal: sign-in refused at the identity provider');
      return html(res, 400, signInPage('Sign-in was cancelled or refused by the identity provider.'), { 'set-cookie': cleared });
    }
    let identity: Identity;
    let token: string;
    let refreshToken: string | undefined;
    try {
      ({ token, refreshToken } = await client.finish(query, started));
      identity = await deps.verifier().authenticate(`Bearer ${token}`);
    } catch (err) {
      // Messages only: an error object could carry the IdP's response.
      logger.warn({ reason: err instanceof Error ? err.message : String(err) }, 'portal: sign-in failed');
      return html(res, 400, signInPage('Sign-in failed: the identity provider did not return a token Tollgate accepts.'), { 'set-cookie': cleared });
    }
    if (identity.provider !== config.provider) {
      logger.warn({ provider: identity.provider }, 'portal: sign-in failed: the token is from another provider');
      return html(res, 400, signInPage('Sign-in failed: the token is from another provider.'), { 'set-cookie': cleared });
    }
    // With a refresh token the session outlives its first token, up to sessionTtlSeconds.
    const expiresAt = refreshToken !== undefined ? Infinity : identity.expiresAt * 1000;
    const id = sessions.put({ identity, token, ...(refreshToken !== undefined ? { refreshToken } : {}), csrf: randomId() }, expiresAt);
    const maxAge = Math.max(0, Math.min(config.sessionTtlSeconds, Math.floor((expiresAt - now()) / 1000)));
    logger.info({ user: identity.user, provider: identity.provider }, 'portal: signed in');
    redirect(res, '/', [...cleared, setCookie(SESSION, id, { secure, maxAge })]);
  }

  async function logout(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const found = sessionOf(req);
    const form = await readForm(req);
    if (found === undefined) return redirect(res, '/', [clear(SESSION)]);
    if (form === undefined || !csrfOk(req, found.session, form.get('csrf') ?? undefined)) {
      return html(res, 403, errorPage('Refused', 'That request did not come from your portal page.'));
    }
    sessions.delete(found.id);
    revokeQuietly(found.session);
    logger.info({ user: found.session.identity.user }, 'portal: signed out');
    redirect(res, '/', [clear(SESSION)]);
  }

  /** Best effort, in the background: logout never waits for nor fails on the IdP. */
  function revokeQuietly(session: PortalSession): void {
    if (session.refreshToken === undefined) return;
    client.revoke(session.refreshToken).catch((err: unknown) => {
      logger.warn({ reason: err instanceof Error ? err.message : String(err) }, 'portal: the IdP did not revoke the refresh token');
    });
  }

  async function token(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const json = (status: number, body: unknown, extra: Record<string, string | string[]> = {}): void =>
      send(res, status, 'application/json', `${JSON.stringify(body)}\n`, extra);
    const signedIn = sessionOf(req);
    if (signedIn === undefined) return json(401, { error: 'not signed in' });
    const submitted = req.headers['x-csrf-token'];
    if (!csrfOk(req, signedIn.session, typeof submitted === 'string' ? submitted : undefined)) return json(403, { error: 'missing or wrong CSRF token' });
    const found = await freshSessionOf(req);
    if (found === undefined || found === 'ended') return json(401, { error: 'session ended: sign in again' }, { 'set-cookie': [clear(SESSION)] });
    json(200, { token: found.session.token, expiresAt: new Date(found.session.identity.expiresAt * 1000).toISOString() });
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const route = `${req.method ?? 'GET'} ${path}`;
    switch (route) {
      case 'GET /':
        return home(req, res);
      case 'GET /owners':
        return owners(req, res);
      case 'GET /login':
        return login(res);
      case 'GET /callback':
        return callback(req, res);
      case 'POST /logout':
        return logout(req, res);
      case 'POST /token':
        return token(req, res);
      case 'GET /portal.css':
        return send(res, 200, 'text/css; charset=utf-8', PORTAL_CSS, { 'cache-control': 'max-age=300' });
      case 'GET /portal.js':
        return send(res, 200, 'text/javascript; charset=utf-8', PORTAL_JS, { 'cache-control': 'max-age=300' });
      case 'GET /healthz':
        return send(res, 200, 'text/plain', 'ok\n');
      default:
        return html(res, 404, errorPage('Not found', 'There is no such page.'));
    }
  }

  return { handle, sessions };
}

export async function startPortalServer(deps: PortalDeps): Promise<PortalServer> {
  const { handle, sessions } = portalHandler(deps);
  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      deps.logger.error({ reason: err instanceof Error ? err.message : String(err) }, 'portal: request failed');
      if (!res.headersSent) html(res, 500, errorPage('Error', 'Something went wrong.'));
      else res.destroy();
    });
  });
  const listening = await listenHttp(server, deps.config.listen);
  return { url: listening.base, port: listening.port, sessions, close: listening.close };
}
