import { expect } from 'chai';
import { DevIssuer } from '../../../src/dev/issuer.js';
import { Authenticator } from '../../../src/identity/verify.js';
import { entryBytes } from '../../../src/identity/token-cache.js';
import * as bad from '../../helpers/tokens.js';
import { testProvider } from '../../helpers/tokens.js';
import { fakeClock, rejectsWith } from './expect-auth.js';

describe('identity/verify: Authenticator', () => {
  let rsa: DevIssuer;
  let ec: DevIssuer;
  let auth: Authenticator;
  const claims = {
    sub: 'u-1',
    email: 'alice@myorg.com',
    groups: ['ml-team', 'eng'],
    tenant_id: 'marketing',
  };
  const bearer = (token: string) => `Bearer ${token}`;

  before(async () => {
    rsa = await DevIssuer.start();
    ec = await DevIssuer.start({ alg: 'ES256', audience: 'ec-client' });
    auth = new Authenticator([
      testProvider(rsa, { name: 'rsa-idp' }),
      testProvider(ec, { name: 'ec-idp', algorithms: ['ES256'], jwksUri: `${ec.url}/jwks.json` }),
    ]);
    expect(await auth.prefetch()).to.deep.equal([]);
    expect(auth.ready).to.equal(true);
  });

  after(async () => {
    await Promise.all([rsa?.close(), ec?.close()]);
  });

  it('verifies a good RS256 token and maps the identity', async () => {
    const token = await rsa.mint(claims);
    const id = await auth.authenticate(bearer(token));
    expect(id).to.include({
      provider: 'rsa-idp',
      issuer: rsa.url,
      subject: 'u-1',
      user: 'alice@myorg.com',
      tenant: 'marketing',
    });
    expect(id.groups).to.deep.equal(['ml-team', 'eng']);
    expect(id.claims.email).to.equal('alice@myorg.com');
    expect(id.expiresAt).to.be.a('number');
    expect(
      Object.isFrozen(id) && Object.isFrozen(id.claims) && Object.isFrozen(id.groups),
    ).to.equal(true);
  });

  it('verifies an ES256 token of the second provider (jwksUri without discovery)', async () => {
    const id = await auth.authenticate(
      bearer(await ec.mint({ sub: 'ec-user', email: 'carol@myorg.com' })),
    );
    expect(id).to.include({ provider: 'ec-idp', user: 'carol@myorg.com' });
    expect(ec.requests.discovery).to.equal(0);
  });

  it('accepts the Bearer scheme in any case and surrounding spaces', async () => {
    const token = await rsa.mint(claims);
    expect((await auth.authenticate(`bEaReR   ${token}  `)).subject).to.equal('u-1');
  });

  describe('missing_token', () => {
    for (const [name, header] of [
      ['no header', undefined],
      ['an empty header', ''],
      ['a scheme without token', 'Bearer'],
      ['a blank token', 'Bearer    '],
      ['the Basic scheme', 'Basic YWxpY2U6c2VjcmV0'],
    ] as const) {
      it(`for ${name}`, async () => {
        await rejectsWith(auth.authenticate(header), 'missing_token');
      });
    }

    it('never echoes a raw API key sent without a scheme', async () => {
      const err = await rejectsWith(auth.authenticate('sk-proj-SECRET123'), 'missing_token');
      expect(err.message).not.to.contain('SECRET123');
    });
  });

  describe('token_too_large', () => {
    it('refuses an oversized token before parsing it', async () => {
      const err = await rejectsWith(auth.authenticate(bearer('#'.repeat(9000))), 'token_too_large');
      expect(err.message).to.equal('token is 9000 bytes; the limit is 8192');
      await rejectsWith(
        auth.authenticate(bearer(await bad.oversized(rsa, claims))),
        'token_too_large',
      );
    });

    it("applies the matched provider's own limit after the global one", async () => {
      const mixed = new Authenticator([
        testProvider(rsa, { name: 'small', maxTokenBytes: 4096 }),
        testProvider(ec, { name: 'large', maxTokenBytes: 16384, algorithms: ['ES256'] }),
      ]);
      const big = (issuer: DevIssuer) => issuer.mint({ ...claims, padding: 'p'.repeat(5000) });
      const err = await rejectsWith(mixed.authenticate(bearer(await big(rsa))), 'token_too_large');
      expect(err.message).to.match(/provider "small" accepts at most 4096$/);
      expect((await mixed.authenticate(bearer(await big(ec)))).provider).to.equal('large');
    });
  });

  describe('malformed_token', () => {
    const part = (obj: unknown) => Buffer.from(JSON.stringify(obj)).toString('base64url');
    const cases: [string, string][] = [
      ['garbage', bad.garbage()],
      ['two parts', 'abc.def'],
      ['four parts', 'a.b.c.d'],
      ['non-base64url characters', 'ab+c.de/f.g=='],
      [
        'a header that is not JSON',
        `${Buffer.from('{nope').toString('base64url')}.${part({})}.sig`,
      ],
      ['a payload that is an array', `${part({ alg: 'RS256' })}.${part([1])}.sig`],
      ['a header without alg', `${part({ typ: 'JWT' })}.${part({ iss: 'x' })}.sig`],
      ['a non-string kid', `${part({ alg: 'RS256', kid: 7 })}.${part({ iss: 'x' })}.sig`],
    ];
    for (const [name, token] of cases) {
      it(`for ${name}`, async () => {
        await rejectsWith(auth.authenticate(bearer(token)), 'malformed_token');
      });
    }
  });

  it('malformed_token for a correctly signed token that marks an extension critical ("crit")', async () => {
    // jose signs (and its jwtVerify accepted) crit: ["b64"] with b64: true; an unknown extension
    // it will not even sign, so that token is assembled by hand (refused before any signature).
    const signed = await rsa.mint(claims, { header: { crit: ['b64'], b64: true } });
    const [, payload, signature] = signed.split('.');
    const header = Buffer.from(JSON.stringify({ alg: 'RS256', kid: 'k', crit: ['exp-ext'], 'exp-ext': 1 })).toString('base64url');
    for (const token of [signed, `${header}.${payload}.${signature}`]) {
      const err = await rejectsWith(auth.authenticate(bearer(token)), 'malformed_token');
      expect(err.message).to.contain('"crit"');
    }
  });

  describe('alg_not_allowed', () => {
    it('refuses alg none', async () => {
      await rejectsWith(
        auth.authenticate(bearer(await bad.algNone(rsa, claims))),
        'alg_not_allowed',
      );
    });

    it('refuses HS256 keyed with the public key (PEM and JWK)', async () => {
      await rejectsWith(
        auth.authenticate(bearer(await bad.hsWithPublicKey(rsa, claims, 'pem'))),
        'alg_not_allowed',
      );
      await rejectsWith(
        auth.authenticate(bearer(await bad.hsWithPublicKey(rsa, claims, 'jwk'))),
        'alg_not_allowed',
      );
    });

    it('refuses a header-embedded jwk, even a correctly signed token carrying jku, x5u, x5c or jwk', async () => {
      await rejectsWith(
        auth.authenticate(bearer(await bad.embeddedJwk(rsa, claims))),
        'alg_not_allowed',
      );
      for (const param of ['jku', 'x5u', 'x5c', 'jwk'] as const) {
        const err = await rejectsWith(
          auth.authenticate(bearer(await bad.keyReference(rsa, param, claims))),
          'alg_not_allowed',
        );
        expect(err.message).to.contain(`("${param}")`);
      }
    });

    it("refuses an algorithm outside the provider's allow-list", async () => {
      const psOnly = new Authenticator([testProvider(rsa, { algorithms: ['PS256'] })]);
      const err = await rejectsWith(
        psOnly.authenticate(bearer(await rsa.mint(claims))),
        'alg_not_allowed',
      );
      expect(err.message).to.contain('(allowed: PS256)');
    });
  });

  it('unknown_issuer for a token of an issuer nobody configured', async () => {
    const stranger = await DevIssuer.start();
    try {
      await rejectsWith(
        auth.authenticate(bearer(await bad.unknownIssuer(stranger, claims, rsa.audience))),
        'unknown_issuer',
      );
      await rejectsWith(
        auth.authenticate(bearer(await bad.unknownIssuer(undefined, claims))),
        'unknown_issuer',
      );
      expect(stranger.requests.jwks).to.equal(0);
    } finally {
      await stranger.close();
    }
  });

  it('unknown_kid for a kid the issuer never published', async () => {
    const err = await rejectsWith(
      auth.authenticate(bearer(await bad.unknownKid(rsa, claims))),
      'unknown_kid',
    );
    expect(err.message).to.contain('"unknown-kid-0001"');
  });

  it('bad_signature for a payload edited after signing', async () => {
    await rejectsWith(auth.authenticate(bearer(await bad.tampered(rsa))), 'bad_signature');
  });

  describe('time claims', () => {
    it('token_expired names the expiry time', async () => {
      const token = await rsa.mint(claims, { expiresIn: -3600 });
      const exp = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString())
        .exp as number;
      const err = await rejectsWith(auth.authenticate(bearer(token)), 'token_expired');
      expect(err.message).to.equal(`token expired at ${new Date(exp * 1000).toISOString()}`);
    });

    it('honours the clock skew for exp and nbf', async () => {
      expect(
        (await auth.authenticate(bearer(await rsa.mint(claims, { expiresIn: -10 })))).user,
      ).to.equal('alice@myorg.com');
      expect(
        (await auth.authenticate(bearer(await rsa.mint(claims, { notBefore: 10 })))).user,
      ).to.equal('alice@myorg.com');
      await rejectsWith(
        auth.authenticate(bearer(await rsa.mint(claims, { expiresIn: -31 }))),
        'token_expired',
      );
    });

    it('token_not_yet_valid for nbf or iat in the future beyond the skew', async () => {
      const err = await rejectsWith(
        auth.authenticate(bearer(await bad.notYetValid(rsa, claims))),
        'token_not_yet_valid',
      );
      expect(err.message).to.match(/^token is not valid before \d{4}-\d\d-\d\dT/);
      const future = Math.floor(Date.now() / 1000) + 3600;
      await rejectsWith(
        auth.authenticate(bearer(await rsa.mint({ ...claims, iat: future }))),
        'token_not_yet_valid',
      );
    });
  });

  describe('audience', () => {
    it('bad_audience for an audience the provider does not accept', async () => {
      await rejectsWith(
        auth.authenticate(bearer(await bad.wrongAudience(rsa, claims))),
        'bad_audience',
      );
    });

    it('accepts any configured audience, and aud lists containing one', async () => {
      const multi = new Authenticator([testProvider(rsa, { audiences: ['first', 'second'] })]);
      expect(
        (await multi.authenticate(bearer(await rsa.mint(claims, { audience: 'second' })))).subject,
      ).to.equal('u-1');
      expect(
        (await multi.authenticate(bearer(await rsa.mint({ ...claims, aud: ['other', 'first'] }))))
          .subject,
      ).to.equal('u-1');
    });

    it('tries the next provider with the same issuer on an audience mismatch', async () => {
      const two = new Authenticator([
        testProvider(rsa, { name: 'web', audiences: ['web-app'] }),
        testProvider(rsa, { name: 'cli', audiences: ['cli-app'] }),
      ]);
      expect(
        (await two.authenticate(bearer(await rsa.mint(claims, { audience: 'cli-app' })))).provider,
      ).to.equal('cli');
      await rejectsWith(
        two.authenticate(bearer(await rsa.mint(claims, { audience: 'nope' }))),
        'bad_audience',
      );
    });
  });

  describe('missing_claim', () => {
    for (const claim of ['iss', 'aud', 'exp'] as const) {
      it(`when "${claim}" is absent`, async () => {
        const err = await rejectsWith(
          auth.authenticate(bearer(await rsa.mint({ ...claims, [claim]: undefined }))),
          'missing_claim',
        );
        expect(err.message).to.equal(`token has no "${claim}" claim`);
      });
    }

    it('when neither the user claim nor sub is present', async () => {
      await rejectsWith(
        auth.authenticate(bearer(await rsa.mint({ sub: undefined, email: undefined }))),
        'missing_claim',
      );
    });
  });

  it('falls back to sub when the user claim is absent', async () => {
    const id = await auth.authenticate(bearer(await rsa.mint({ sub: 'svc-1' })));
    expect(id).to.include({ user: 'svc-1', subject: 'svc-1' });
    expect(id.groups).to.deep.equal([]);
    expect(id).not.to.have.property('tenant');
  });

  it('never puts the token or its signature into an error message', async () => {
    for (const c of await bad.hostileTokens(rsa, claims)) {
      const err = await rejectsWith(auth.authenticate(bearer(c.token)), c.reason);
      for (const piece of c.token.split('.').filter((p) => p.length > 8))
        expect(err.message, c.name).not.to.contain(piece);
    }
  });

  describe('jwks_unavailable', () => {
    it('when no key was ever fetched and the IdP is down; a later request retries', async () => {
      const down = await DevIssuer.start();
      const clock = fakeClock();
      try {
        down.setDown(true);
        const a = new Authenticator([testProvider(down)], { now: clock.now });
        const failures = await a.prefetch();
        expect(failures).to.have.length(1);
        expect(failures[0]!.error.message).to.contain('HTTP 503');
        expect(a.ready).to.equal(false);
        const token = await down.mint(claims);
        const err = await rejectsWith(a.authenticate(bearer(token)), 'jwks_unavailable');
        expect(err.message).to.contain('HTTP 503');
        down.setDown(false);
        clock.advance(2);
        expect((await a.authenticate(bearer(token))).user).to.equal('alice@myorg.com');
        expect(a.ready).to.equal(true);
      } finally {
        await down.close();
      }
    });
  });

  describe('verified-token cache', () => {
    it('answers a repeated token without a second signature check', async () => {
      const a = new Authenticator([testProvider(rsa)]);
      const token = await rsa.mint(claims);
      const first = await a.authenticate(bearer(token));
      const second = await a.authenticate(bearer(token));
      expect(second).to.equal(first);
      expect(a.stats).to.include({ verifications: 1, cacheHits: 1, cacheEntries: 1 });
    });

    it('merges concurrent verifications of the same token', async () => {
      const a = new Authenticator([testProvider(rsa)]);
      const token = await rsa.mint(claims);
      await Promise.all(Array.from({ length: 5 }, () => a.authenticate(bearer(token))));
      expect(a.stats.verifications).to.equal(1);
    });

    it('re-checks exp on a hit, with the skew', async () => {
      const clock = fakeClock();
      const a = new Authenticator([testProvider(rsa)], { now: clock.now });
      const token = await rsa.mint(claims, { expiresIn: 60 });
      await a.authenticate(bearer(token));
      clock.advance(60 + 29);
      await a.authenticate(bearer(token));
      expect(a.stats.cacheHits).to.equal(1);
      clock.advance(2);
      await rejectsWith(a.authenticate(bearer(token)), 'token_expired');
      expect(a.stats.cacheEntries).to.equal(0);
    });

    it('is bounded and evicts the least recently used token', async () => {
      const a = new Authenticator([testProvider(rsa)], { cacheSize: 2 });
      const [t1, t2, t3] = await Promise.all(
        [1, 2, 3].map((n) => rsa.mint({ ...claims, sub: `u${n}` })),
      );
      for (const t of [t1!, t2!, t1!, t3!]) await a.authenticate(bearer(t)); // t3 evicts t2
      expect(a.stats).to.include({ verifications: 3, cacheHits: 1, cacheEntries: 2 });
      await a.authenticate(bearer(t1!));
      await a.authenticate(bearer(t2!));
      expect(a.stats).to.include({ verifications: 4, cacheHits: 2 });
    });

    it('is bounded by memory too: a token with large claims takes the room of several small ones', async () => {
      const small = await Promise.all([1, 2].map((n) => rsa.mint({ ...claims, sub: `u${n}` })));
      const large = await rsa.mint({ ...claims, sub: 'big', pad: 'x'.repeat(3000) });
      const size = (t: string): number => entryBytes(Buffer.byteLength(t));
      // Room for the large token, or for the two small ones, never for the large and a small one.
      const a = new Authenticator([testProvider(rsa)], { cacheBytes: size(large) + size(small[0]!) - 1 });
      for (const t of small) await a.authenticate(bearer(t));
      expect(a.stats).to.include({ cacheEntries: 2, cacheBytes: size(small[0]!) + size(small[1]!) });
      await a.authenticate(bearer(large));
      // The large token pushed both small ones out (oldest first) and is cached alone.
      expect(a.stats).to.include({ verifications: 3, cacheEntries: 1, cacheBytes: size(large) });
      await a.authenticate(bearer(large));
      await a.authenticate(bearer(small[0]!));
      expect(a.stats).to.include({ verifications: 4, cacheHits: 1 });
    });

    it('does not cache a token whose entry alone exceeds the memory bound', async () => {
      const token = await rsa.mint({ ...claims, sub: 'big', pad: 'x'.repeat(3000) });
      const a = new Authenticator([testProvider(rsa)], { cacheBytes: entryBytes(Buffer.byteLength(token)) - 1 });
      await a.authenticate(bearer(token));
      await a.authenticate(bearer(token));
      expect(a.stats).to.include({ verifications: 2, cacheHits: 0, cacheEntries: 0, cacheBytes: 0 });
    });

    it('does not cache refusals', async () => {
      const a = new Authenticator([testProvider(rsa)]);
      const token = await bad.tampered(rsa);
      await rejectsWith(a.authenticate(bearer(token)), 'bad_signature');
      await rejectsWith(a.authenticate(bearer(token)), 'bad_signature');
      expect(a.stats).to.include({ verifications: 2, cacheEntries: 0 });
    });
  });
});
