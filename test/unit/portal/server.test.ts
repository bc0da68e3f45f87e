/**
 * The portal's routes without sockets: requests and responses as plain objects, a sign-in client
 * that fails or is never reached, sessions planted directly. What is checked: the security
 * headers, CSRF and Origin on every state-changing request, one-use sign-ins, logout.
 */
import type { IncomingMessage } from 'node:http';
import { expect } from 'chai';
import type { PortalClient } from '../../../src/portal/oidc.js';
import { ADA, portalWith, request } from './fakes.js';

describe('portal: routes', () => {
  const { portal, call, raw } = portalWith();
  const cookie = '__Host-tollgate_portal';

  it('answers the sign-in page with the security headers when there is no session', async () => {
    const a = await call(request('GET', '/'));
    expect(a.status).to.equal(200);
    expect(a.headers['content-security-policy']).to.include("default-src 'none'").and.include("frame-ancestors 'none'");
    expect(a.headers['cache-control']).to.equal('no-store');
    expect(a.body).to.include('href="/login"');
  });

  it('says the IdP is unreachable (502) when discovery fails, naming no secret', async () => {
    const a = await call(request('GET', '/login'));
    expect(a.status).to.equal(502);
    expect(a.body).to.include('identity provider cannot be reached');
  });

  it('refuses a callback with no sign-in of its own', async () => {
    const a = await call(request('GET', '/callback?code=abc&state=xyz'));
    expect(a.status).to.equal(400);
    expect(a.headers['set-cookie']).to.deep.equal(['__Host-tollgate_portal_signin=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0; Secure']);
  });

  it('hands the token out only to its session with its CSRF token and origin', async () => {
    const id = portal.sessions.put({ identity: ADA, token: 'tok.en.value', csrf: 'csrf-1' });
    const other = portal.sessions.put({ identity: ADA, token: 'other', csrf: 'csrf-2' });
    expect((await call(request('POST', '/token', { 'x-csrf-token': 'csrf-1' }))).status).to.equal(401);
    expect((await call(request('POST', '/token', { cookie: `${cookie}=${id}` }))).status).to.equal(403);
    expect((await call(request('POST', '/token', { cookie: `${cookie}=${id}`, 'x-csrf-token': 'csrf-2' }))).status).to.equal(403);
    const foreign = request('POST', '/token', { cookie: `${cookie}=${id}`, 'x-csrf-token': 'csrf-1', origin: 'https://evil.example' });
    expect((await call(foreign)).status).to.equal(403);
    const ok = await call(request('POST', '/token', { cookie: `${cookie}=${id}`, 'x-csrf-token': 'csrf-1', origin: 'https://portal.example.com' }));
    expect(ok.status).to.equal(200);
    expect(JSON.parse(ok.body)).to.include({ token: 'tok.en.value' });
    portal.sessions.delete(other);
  });

  it('renders the Me page for a session and signs out with the CSRF token only', async () => {
    const id = portal.sessions.put({ identity: ADA, token: 'tok', csrf: 'csrf-3' });
    const me = await call(request('GET', '/', { cookie: `${cookie}=${id}` }));
    expect(me.status).to.equal(200);
    expect(me.body).to.include('ada@example.com');
    const form = { cookie: `${cookie}=${id}`, 'content-type': 'application/x-www-form-urlencoded' };
    expect((await call(request('POST', '/logout', form, 'csrf=nope'))).status).to.equal(403);
    const out = await call(request('POST', '/logout', form, 'csrf=csrf-3'));
    expect(out.status).to.equal(303);
    expect(out.headers['set-cookie']).to.deep.equal([`${cookie}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0; Secure`]);
    expect(portal.sessions.get(id)).to.equal(undefined);
    expect((await call(request('POST', '/logout', form, 'x'.repeat(5000)))).status).to.equal(303);
  });

  it('answers 404 elsewhere and logs no token', async () => {
    expect((await call(request('GET', '/admin'))).status).to.equal(404);
    expect(raw.join('\n')).to.not.include('tok.en.value');
  });
});

describe('portal: routes with an expiring token', () => {
  const revoked: string[] = [];
  let refreshOk = true;
  const idp = {
    refresh: (rt: string) => (refreshOk ? Promise.resolve({ token: `fresh-${rt}`, refreshToken: rt }) : Promise.reject(new Error('invalid_grant'))),
    revoke: (rt: string) => {
      revoked.push(rt);
      return Promise.reject(new Error('the IdP is down'));
    },
  };
  const { portal, call, raw } = portalWith({
    client: idp as unknown as PortalClient,
    verifier: () => ({ authenticate: () => Promise.resolve({ ...ADA, expiresAt: Math.floor(Date.now() / 1000) + 600 }) }),
  });
  const cookie = '__Host-tollgate_portal';
  const expiring = (csrf: string): string =>
    portal.sessions.put({ identity: { ...ADA, expiresAt: Math.floor(Date.now() / 1000) + 30 }, token: 'old', refreshToken: `rt-${csrf}`, csrf });
  const post = (id: string, csrf: string): IncomingMessage => request('POST', '/token', { cookie: `${cookie}=${id}`, 'x-csrf-token': csrf });

  it('POST /token hands out a refreshed token when the old one has less than a minute left', async () => {
    refreshOk = true;
    const id = expiring('c1');
    const a = await call(post(id, 'c1'));
    expect(a.status).to.equal(200);
    const body = JSON.parse(a.body) as { token: string; expiresAt: string };
    expect(body.token).to.equal('fresh-rt-c1');
    expect(Date.parse(body.expiresAt) - Date.now()).to.be.greaterThan(500_000);
    expect(Object.keys(body), 'the refresh token never leaves the server').to.deep.equal(['token', 'expiresAt']);
  });

  it('a failed refresh ends the session: POST /token answers 401 JSON, the page asks to sign in again', async () => {
    refreshOk = false;
    const id = expiring('c2');
    const a = await call(post(id, 'c2'));
    expect(a.status).to.equal(401);
    expect(JSON.parse(a.body)).to.deep.equal({ error: 'session ended: sign in again' });
    expect(portal.sessions.get(id)).to.equal(undefined);
    const other = expiring('c3');
    const page = await call(request('GET', '/', { cookie: `${cookie}=${other}` }));
    expect(page.status).to.equal(200);
    expect(page.body).to.include('Your session ended').and.include('href="/login"');
    expect(page.headers['set-cookie']).to.deep.equal([`${cookie}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0; Secure`]);
  });

  it('logout revokes the refresh token, and a failed revocation does not block it', async () => {
    refreshOk = true;
    const id = expiring('c4');
    const form = { cookie: `${cookie}=${id}`, 'content-type': 'application/x-www-form-urlencoded' };
    const out = await call(request('POST', '/logout', form, 'csrf=c4'));
    expect(out.status).to.equal(303);
    expect(revoked).to.deep.equal(['rt-c4']);
    expect(portal.sessions.get(id)).to.equal(undefined);
    await new Promise((r) => setImmediate(r));
    expect(raw.join('\n')).to.include('did not revoke the refresh token').and.not.include('rt-c');
  });
});
