import { expect } from 'chai';
import { parseClientConfig } from '../../../src/config/client.js';
import { SettingsError, resolveSettings } from '../../../src/cli/login/settings.js';
import { needsRefresh, printedToken, REFRESH_MARGIN_S } from '../../../src/cli/login/session.js';
import type { CachedLogin } from '../../../src/cli/login/cache.js';

const ENV = ['TOLLGATE_ISSUER', 'TOLLGATE_CLIENT_ID', 'TOLLGATE_SCOPE', 'TOLLGATE_RESOURCE', 'TOLLGATE_PROFILE', 'TOLLGATE_CONFIG'];

describe('cli/login: settings', () => {
  const saved: Record<string, string | undefined> = {};
  beforeEach(() => {
    for (const k of ENV) {
      saved[k] = process.env[k];
      delete process.env[k];
    }
  });
  afterEach(() => {
    for (const k of ENV) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  });

  const file = parseClientConfig(`
issuer: https://login.example.com
clientId: from-file
profiles:
  work: { clientId: work-cli, scope: openid }
`);

  it('merges flags over env over the profile over the top-level defaults', () => {
    expect(resolveSettings({}, file)).to.deep.equal({
      profile: 'default',
      issuer: 'https://login.example.com',
      clientId: 'from-file',
      scope: 'openid offline_access',
      token: 'access',
    });
    expect(resolveSettings({ profile: 'work' }, file)).to.include({ clientId: 'work-cli', scope: 'openid' });
    process.env['TOLLGATE_CLIENT_ID'] = 'from-env';
    process.env['TOLLGATE_PROFILE'] = 'work';
    expect(resolveSettings({}, file)).to.include({ profile: 'work', clientId: 'from-env' });
    expect(resolveSettings({ clientId: 'from-flag', scope: ' openid  email ' }, file)).to.include({ clientId: 'from-flag', scope: 'openid email' });
  });

  it('says where the issuer and client id can come from when they are missing', () => {
    expect(() => resolveSettings({}, parseClientConfig(''))).to.throw(SettingsError, /needs --issuer URL .* and --client-id ID/);
  });

  it('refuses plain http except on loopback, and bad profile names', () => {
    expect(() => resolveSettings({ issuer: 'http://idp.example.com', clientId: 'c' }, file)).to.throw(SettingsError, /https/);
    for (const ok of ['http://127.0.0.1:8080', 'http://localhost:1', 'http://[::1]:9']) {
      expect(resolveSettings({ issuer: ok, clientId: 'c' }, file).issuer).to.equal(ok);
    }
    expect(() => resolveSettings({ profile: '../x' }, file)).to.throw(SettingsError, /profile names/);
  });
});

describe('cli/login: when a cached token is refreshed', () => {
  const login: CachedLogin = {
    version: 1,
    issuer: 'https://login.example.com',
    clientId: 'c',
    scope: 'openid',
    token: 'access',
    accessToken: 'AT',
    idToken: 'IDT',
    obtainedAt: 0,
  };

  it(`refreshes with less than ${REFRESH_MARGIN_S} s left, never without an expiry`, () => {
    expect(needsRefresh({ ...login, expiresAt: 1000 }, 1000 - REFRESH_MARGIN_S - 1)).to.equal(false);
    expect(needsRefresh({ ...login, expiresAt: 1000 }, 1000 - REFRESH_MARGIN_S + 1)).to.equal(true);
    expect(needsRefresh({ ...login, expiresAt: 1000 }, 2000)).to.equal(true);
    expect(needsRefresh(login, 1e12)).to.equal(false);
  });

  it('prints the access token, or the ID token when the profile says so', () => {
    expect(printedToken(login)).to.equal('AT');
    expect(printedToken({ ...login, token: 'id' })).to.equal('IDT');
  });
});
