import { expect } from 'chai';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { DevIssuer, durationSeconds, mintFromState } from '../../../src/dev/issuer.js';
import { Authenticator } from '../../../src/identity/verify.js';
import { testProvider } from '../../helpers/tokens.js';

describe('dev/issuer: DevIssuer', () => {
  let issuer: DevIssuer;
  let dir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tollgate-issuer-'));
    issuer = await DevIssuer.start({
      statePath: join(dir, 'state', 'issuer.json'),
      audience: 'demo-aud',
    });
  });

  after(async () => {
    await issuer?.close();
    await rm(dir, { recursive: true, force: true });
  });

  afterEach(() => issuer.setDown(false));

  it('listens on 127.0.0.1 and serves discovery and public keys only', async () => {
    expect(issuer.url).to.match(/^http:\/\/127\.0\.0\.1:\d+$/);
    const doc = (await (
      await fetch(`${issuer.url}/.well-known/openid-configuration`)
    ).json()) as Record<string, unknown>;
    expect(doc).to.include({ issuer: issuer.url, jwks_uri: `${issuer.url}/jwks.json` });
    const jwks = (await (await fetch(`${issuer.url}/jwks.json`)).json()) as {
      keys: Record<string, unknown>[];
    };
    expect(jwks.keys).to.have.length(1);
    expect(jwks.keys[0]).to.include({
      kty: 'RSA',
      alg: 'RS256',
      use: 'sig',
      kid: issuer.currentKid,
    });
    expect(jwks.keys[0]).not.to.have.property('d');
  });

  it('answers 503 while down', async () => {
    issuer.setDown(true);
    expect((await fetch(`${issuer.url}/jwks.json`)).status).to.equal(503);
    issuer.setDown(false);
    expect((await fetch(`${issuer.url}/jwks.json`)).status).to.equal(200);
  });

  it('mints tokens with default iss, aud, sub, iat and a one-hour exp', async () => {
    const token = await issuer.mint({ email: 'alice@myorg.com' });
    const claims = decodeJwt(token);
    expect(claims).to.include({
      iss: issuer.url,
      aud: 'demo-aud',
      sub: 'demo-user',
      email: 'alice@myorg.com',
    });
    expect(claims.exp! - claims.iat!).to.equal(3600);
    expect(decodeProtectedHeader(token)).to.include({
      alg: 'RS256',
      kid: issuer.currentKid,
      typ: 'JWT',
    });
  });

  it('lets options and explicit claims override the defaults', async () => {
    const claims = decodeJwt(
      await issuer.mint({ sub: 'bob', aud: undefined }, { expiresIn: '15m', notBefore: 60 }),
    );
    expect(claims.sub).to.equal('bob');
    expect(claims).not.to.have.property('aud');
    expect(claims.exp! - claims.iat!).to.equal(900);
    expect(claims.nbf! - claims.iat!).to.equal(60);
  });

  it('parses durations', () => {
    expect(durationSeconds(90)).to.equal(90);
    expect(durationSeconds('90s')).to.equal(90);
    expect(durationSeconds('15m')).to.equal(900);
    expect(durationSeconds('2h')).to.equal(7200);
    expect(durationSeconds('-1d')).to.equal(-86400);
    expect(() => durationSeconds('soon')).to.throw('invalid duration');
  });

  it('saves its state with mode 0600 so another process can mint verifiable tokens', async () => {
    const path = join(dir, 'state', 'issuer.json');
    expect((await stat(path)).mode & 0o777).to.equal(0o600);
    const state = JSON.parse(await readFile(path, 'utf8')) as {
      issuer: string;
      currentKid: string;
    };
    expect(state).to.include({ issuer: issuer.url, currentKid: issuer.currentKid });

    const token = await mintFromState(path, { email: 'carol@myorg.com' }, { expiresIn: '5m' });
    const auth = new Authenticator([testProvider(issuer)]);
    const id = await auth.authenticate(`Bearer ${token}`);
    expect(id).to.include({ user: 'carol@myorg.com', issuer: issuer.url });
  });

  it('rotates: the new key signs and is saved; old keys stay published unless retired', async () => {
    const path = join(dir, 'state', 'issuer.json');
    const first = issuer.currentKid;
    const kid = await issuer.rotate();
    expect(issuer.currentKid).to.equal(kid);
    expect(issuer.jwks().keys.map((k) => k.kid)).to.deep.equal([first, kid]);
    expect(decodeProtectedHeader(await issuer.mint()).kid).to.equal(kid);
    expect(decodeProtectedHeader(await issuer.mint({}, { kid: first })).kid).to.equal(first);
    expect(decodeProtectedHeader(await mintFromState(path)).kid).to.equal(kid);
    expect((await stat(path)).mode & 0o777).to.equal(0o600);

    await issuer.rotate({ retireOld: true });
    expect(issuer.jwks().keys).to.have.length(1);
  });

  it('can sign with ES256', async () => {
    const ec = await DevIssuer.start({ alg: 'ES256' });
    try {
      expect(ec.jwks().keys[0]).to.include({ kty: 'EC', crv: 'P-256', alg: 'ES256' });
      const auth = new Authenticator([testProvider(ec)]);
      expect((await auth.authenticate(`Bearer ${await ec.mint({ sub: 'e' })}`)).subject).to.equal(
        'e',
      );
    } finally {
      await ec.close();
    }
  });
});
