/**
 * The self-service portal end to end over HTTP: a real OpenID Provider (`oidc-provider`) with its
 * real login and consent pages, `tollgate stack` (real Envoy) with `portal:` on, and the official
 * openai SDK for the model calls. A developer signs in (authorization code + PKCE), copies the
 * token, calls through Envoy, and the Me page shows what the ledger holds; another developer sees
 * only theirs; sign-out ends the session; no token ever reaches a log line.
 */
import { expect } from 'chai';
import OpenAI from 'openai';
import { signIn, TestBrowser, type Page } from '../helpers/oidc-user.js';
import { PORTAL_CLIENT, PORTAL_SECRET, withPortalStack } from '../helpers/portal.js';

/** The numbers of one budget row on the Me page (`<data value>` of used / reserved / remaining). */
function budgetRow(page: Page, name: string): { used: number; reserved: number; remaining: number } {
  const row = [...page.html.matchAll(/<tr>([\s\S]*?)<\/tr>/g)].map((m) => m[1] ?? '').find((r) => r.startsWith(`<td>${name}</td>`));
  if (row === undefined) throw new Error(`no budget row ${name} on the page`);
  const num = (cls: string): number => Number(new RegExp(`<data value="(\\d+)" class="${cls}">`).exec(row)?.[1] ?? NaN);
  return { used: num('used'), reserved: num('reserved'), remaining: num('remaining') };
}

function csrfOf(page: Page): string {
  const m = /<meta name="csrf-token" content="([^"]+)">/.exec(page.html);
  if (m?.[1] === undefined) throw new Error(`no CSRF token on ${page.url}`);
  return m[1];
}

describe('e2e: the portal over HTTP (oidc-provider + real Envoy)', function () {
  this.timeout(120_000);
  const e2e = withPortalStack();
  const portal = (): string => e2e.url;

  async function signedIn(login: string): Promise<{ browser: TestBrowser; page: Page }> {
    const browser = new TestBrowser();
    const page = await signIn(browser, `${portal()}/login`, login);
    expect(page.url, page.html).to.equal(`${portal()}/`);
    expect(page.status, page.html).to.equal(200);
    return { browser, page };
  }

  async function tokenOf(browser: TestBrowser, page: Page): Promise<string> {
    const res = await browser.post(`${portal()}/token`, { 'x-csrf-token': csrfOf(page), origin: portal() });
    expect(res.status, res.html).to.equal(200);
    return (JSON.parse(res.html) as { token: string }).token;
  }

  it('shows a sign-in page with a strict CSP and no session', async () => {
    const res = await fetch(`${portal()}/`);
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-security-policy')).to.include("script-src 'self'").and.include("default-src 'none'");
    expect(res.headers.get('x-content-type-options')).to.equal('nosniff');
    expect(await res.text()).to.include('href="/login"');
  });

  it('signs in through the real login page; the Me page shows what the ledger holds after SDK calls', async () => {
    const { browser, page } = await signedIn('ada');
    expect(page.html).to.include('Signed in as <span id="user">ada@example.com</span>');
    const cookie = browser.cookie('tollgate_portal');
    expect(cookie).to.be.a('string');
    const token = await tokenOf(browser, page);
    const sdk = new OpenAI({ baseURL: `${e2e.stack.ready.envoy}/v1`, apiKey: token, maxRetries: 0 });
    for (let i = 0; i < 2; i++) await sdk.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `hi ${i}` }] });
    await e2e.settled('user=ada@example.com');
    const me = await browser.get(`${portal()}/`);
    const [user, tenant] = await Promise.all([e2e.ledger('user=ada@example.com'), e2e.ledger('tenant=acme')]);
    expect(budgetRow(me, 'user:ada@example.com')).to.deep.equal({ used: user.used, reserved: user.reserved, remaining: user.remaining });
    expect(budgetRow(me, 'tenant:acme')).to.deep.equal({ used: tenant.used, reserved: tenant.reserved, remaining: tenant.remaining });
    expect(user.used).to.be.greaterThan(0);
    // The per-user window counted the two calls (the page and the copy POST count nothing).
    expect(me.html).to.match(/<td>rl:per-user:ada%40example.com<\/td><td>50 \/ minute<\/td><td><data value="2">2<\/data><\/td><td><data value="48">48<\/data>/);
    expect(me.html).to.not.include(token);
  });

  it("another user's session shows only theirs, and cannot get another's token", async () => {
    const ada = await signedIn('ada');
    const bob = await signedIn('bob');
    expect(bob.page.html).to.include('Signed in as <span id="user">bob@example.com</span>');
    expect(bob.page.html).to.not.include('user:ada@example.com');
    expect(bob.page.html).to.not.include('rl:per-user:ada%40example.com');
    expect(bob.page.html).to.include('rl:per-user:bob%40example.com');
    const bobToken = await tokenOf(bob.browser, bob.page);
    const adaToken = await tokenOf(ada.browser, ada.page);
    expect(bobToken).to.not.equal(adaToken);
    const claims = JSON.parse(Buffer.from(bobToken.split('.')[1] ?? '', 'base64url').toString()) as { sub: string };
    expect(claims.sub).to.equal('bob');
    // Bob's cookie with Ada's CSRF token: refused.
    const cross = await bob.browser.post(`${portal()}/token`, { 'x-csrf-token': csrfOf(ada.page) });
    expect(cross.status).to.equal(403);
    // No cookie at all.
    expect((await fetch(`${portal()}/token`, { method: 'POST', headers: { 'x-csrf-token': csrfOf(ada.page) } })).status).to.equal(401);
    // A cross-site origin, even with the right token.
    const foreign = await ada.browser.post(`${portal()}/token`, { 'x-csrf-token': csrfOf(ada.page), origin: 'https://evil.example' });
    expect(foreign.status).to.equal(403);
  });

  it('signs out only with the CSRF token, and the session is gone afterwards', async () => {
    const { browser, page } = await signedIn('ada');
    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    expect((await browser.post(`${portal()}/logout`, form, 'csrf=wrong')).status).to.equal(403);
    expect((await browser.get(`${portal()}/`)).html).to.include('Signed in as');
    const sessionId = browser.cookie('tollgate_portal') ?? '';
    const out = await browser.post(`${portal()}/logout`, form, `csrf=${encodeURIComponent(csrfOf(page))}`);
    expect(out.url).to.equal(`${portal()}/`);
    expect(out.html).to.include('href="/login"');
    expect(browser.cookie('tollgate_portal')).to.equal(undefined);
    // The old session id, replayed by hand, is dead on the server too.
    const replay = await fetch(`${portal()}/token`, { method: 'POST', headers: { cookie: `tollgate_portal=${sessionId}`, 'x-csrf-token': csrfOf(page) } });
    expect(replay.status).to.equal(401);
    const home = await fetch(`${portal()}/`, { headers: { cookie: `tollgate_portal=${sessionId}` } });
    expect(await home.text()).to.not.include('Signed in as');
  });

  it('a callback without a sign-in of its own is refused', async () => {
    const res = await fetch(`${portal()}/callback?code=x&state=y`);
    expect(res.status).to.equal(400);
    expect(await res.text()).to.include('expired or was already used');
  });

  /** Seconds until `token`'s `exp`. */
  const secondsLeft = (token: string): number =>
    (JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()) as { exp: number }).exp - Date.now() / 1000;
  /** Waits until `token` has less than the 60 s refresh margin left. */
  const untilRefreshDue = (token: string): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, (secondsLeft(token) - 59.5) * 1000)));

  it('refreshes the token once it has less than a minute left: one refresh for parallel copies, a new token the gateway accepts', async () => {
    e2e.op.accessTokenTtl = 62; // just over the refresh margin at sign-in
    try {
      const { browser, page } = await signedIn('ada');
      const first = await tokenOf(browser, page);
      expect(secondsLeft(first)).to.be.greaterThan(59);
      await untilRefreshDue(first);
      const before = e2e.op.tokenRequests.length;
      const copies = await Promise.all([tokenOf(browser, page), tokenOf(browser, page), tokenOf(browser, page)]);
      expect(e2e.op.tokenRequests.length - before, 'one refresh for the three requests').to.equal(1);
      expect(new Set(copies).size).to.equal(1);
      const renewed = copies[0] ?? '';
      expect(renewed).to.not.equal(first);
      expect(secondsLeft(renewed)).to.be.greaterThan(60);
      const sdk = new OpenAI({ baseURL: `${e2e.stack.ready.envoy}/v1`, apiKey: renewed, maxRetries: 0 });
      const answer = await sdk.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'after a refresh' }] });
      expect(answer.choices.length).to.be.greaterThan(0);
      expect((await browser.get(`${portal()}/`)).html).to.include('Signed in as <span id="user">ada@example.com</span>');
    } finally {
      e2e.op.accessTokenTtl = 3600;
    }
  });

  it('a refresh token revoked at the IdP ends the session: 401 for the copy, the sign-in page with a message', async () => {
    e2e.op.accessTokenTtl = 62;
    try {
      const { browser, page } = await signedIn('bob');
      const token = await tokenOf(browser, page);
      const refreshToken = e2e.op.refreshTokens.at(-1) ?? '';
      const revoked = await fetch(`${e2e.op.issuer}/token/revocation`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token: refreshToken, token_type_hint: 'refresh_token', client_id: PORTAL_CLIENT, client_secret: PORTAL_SECRET }),
      });
      expect(revoked.status).to.equal(200);
      await untilRefreshDue(token);
      const res = await browser.post(`${portal()}/token`, { 'x-csrf-token': csrfOf(page), origin: portal() });
      expect(res.status).to.equal(401);
      expect(JSON.parse(res.html)).to.deep.equal({ error: 'session ended: sign in again' });
      const home = await browser.get(`${portal()}/`);
      expect(home.html).to.include('href="/login"').and.not.include('Signed in as');
      expect(e2e.stack.logs.join('\n')).to.include('portal: session ended: its token could not be refreshed');
    } finally {
      e2e.op.accessTokenTtl = 3600;
    }
  });

  it('signing out revokes the refresh token at the IdP', async () => {
    const { browser, page } = await signedIn('ada');
    const refreshToken = e2e.op.refreshTokens.at(-1) ?? '';
    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    await browser.post(`${portal()}/logout`, form, `csrf=${encodeURIComponent(csrfOf(page))}`);
    const deadline = Date.now() + 5000;
    let status = 200;
    while (status === 200 && Date.now() < deadline) {
      const res = await fetch(`${e2e.op.issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: PORTAL_CLIENT, client_secret: PORTAL_SECRET }),
      });
      status = res.status;
      if (status === 200) await new Promise((r) => setTimeout(r, 50));
    }
    expect(status, 'the IdP refuses the revoked refresh token').to.equal(400);
  });

  it('never writes a token to a log line', async () => {
    const browser = new TestBrowser();
    const page = await signIn(browser, `${portal()}/login`, 'bob');
    const token = await tokenOf(browser, page);
    const logs = e2e.stack.logs.join('\n');
    expect(logs).to.include('portal: signed in');
    expect(logs).to.not.include(token);
    expect(logs).to.not.include(token.split('.')[2] ?? 'x');
    expect(logs).to.not.include(PORTAL_SECRET);
    for (const refreshToken of e2e.op.refreshTokens) expect(logs).to.not.include(refreshToken);
    expect(logs).to.not.include(browser.cookie('tollgate_portal') ?? 'x');
  });
});
