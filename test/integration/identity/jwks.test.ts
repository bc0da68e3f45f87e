import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import type { ProviderConfig } from '../../../src/config/schema.js';
import { DevIssuer } from '../../../src/dev/issuer.js';
import { KeySource, type FetchFn } from '../../../src/identity/jwks.js';
import { Authenticator } from '../../../src/identity/verify.js';
import { testProvider } from '../../helpers/tokens.js';
import { fakeClock, rejectsWith } from './expect-auth.js';

/** A fetch that answers from `routes` (URL → JSON body or status) and records every URL. */
function fakeFetch(routes: Record<string, unknown>): { fetch: FetchFn; calls: string[] } {
  const calls: string[] = [];
  const fetch: FetchFn = (url) => {
    calls.push(url);
    const body = routes[url];
    if (body === undefined) return Promise.resolve(new Response('not found', { status: 404 }));
    if (typeof body === 'number') return Promise.resolve(new Response('', { status: body }));
    return Promise.resolve(Response.json(body));
  };
  return { fetch, calls };
}

/** Poll (briefly) until `check` holds: for background refreshes that nobody awaits. */
async function eventually(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i += 1) await new Promise((r) => setTimeout(r, 5));
  expect(check()).to.equal(true);
}

describe('identity/jwks: KeySource', () => {
  let issuer: DevIssuer;
  let provider: ProviderConfig;

  before(async () => {
    issuer = await DevIssuer.start();
    provider = testProvider(issuer);
  });

  after(async () => {
    await issuer?.close();
  });

  afterEach(() => {
    issuer.setDown(false);
    issuer.setDelay(0);
  });

  it('discovers the jwks_uri from the issuer when jwksUri is absent', async () => {
    const before = issuer.requests;
    const source = new KeySource(provider);
    expect(source.ready).to.equal(false);
    expect(await source.prefetch()).to.equal(undefined);
    expect(source.ready).to.equal(true);
    expect(issuer.requests).to.deep.equal({
      discovery: before.discovery + 1,
      jwks: before.jwks + 1,
    });
    expect(source.stats).to.include({ refreshes: 1, failures: 0, keys: 1 });
    expect(await source.keysFor(issuer.currentKid, 'RS256')).to.have.length(1);
  });

  it('skips discovery when jwksUri is configured', async () => {
    const before = issuer.requests;
    const source = new KeySource({ ...provider, jwksUri: `${issuer.url}/jwks.json` });
    await source.prefetch();
    expect(issuer.requests).to.deep.equal({ discovery: before.discovery, jwks: before.jwks + 1 });
  });

  it('refuses a discovery document that names another issuer', async () => {
    const { fetch } = fakeFetch({
      'https://idp.example/.well-known/openid-configuration': {
        issuer: 'https://evil.example',
        jwks_uri: 'https://evil.example/jwks',
      },
    });
    const source = new KeySource(testProvider('https://idp.example'), { fetch });
    const err = await source.prefetch();
    expect(err?.message).to.contain(
      'names issuer "https://evil.example", expected "https://idp.example"',
    );
    expect(source.ready).to.equal(false);
    expect(source.stats).to.include({ failures: 1, lastError: err?.message });
  });

  it('prefetch reports an unreachable IdP instead of throwing', async () => {
    const source = new KeySource(testProvider('http://127.0.0.1:1'));
    const err = await source.prefetch();
    expect(err?.message).to.match(
      /^discovery document http:\/\/127\.0\.0\.1:1\/\.well-known\/openid-configuration unreachable/,
    );
    expect(source.ready).to.equal(false);
  });

  it('gives up on a slow IdP after jwksTimeoutMs', async () => {
    issuer.setDelay(2000);
    const source = new KeySource({ ...provider, jwksTimeoutMs: 100 });
    const started = Date.now();
    const err = await source.prefetch();
    expect(err?.message).to.contain('timed out after 100 ms');
    expect(Date.now() - started).to.be.below(1000);
  });

  it('merges concurrent fetches into one', async () => {
    const before = issuer.requests.jwks;
    const source = new KeySource(provider);
    await Promise.all(Array.from({ length: 5 }, () => source.keysFor(issuer.currentKid, 'RS256')));
    expect(issuer.requests.jwks).to.equal(before + 1);
  });

  it('refetches for a flood of unknown kids at most once per cooldown, sharing the fetch', async () => {
    const clock = fakeClock();
    const source = new KeySource(provider, { now: clock.now });
    await source.prefetch();
    const start = issuer.requests.jwks;
    const flood = () =>
      Promise.all(
        Array.from({ length: 50 }, () =>
          rejectsWith(source.keysFor(`random-${randomUUID()}`, 'RS256'), 'unknown_kid'),
        ),
      );
    // The start-up fetch does not hold the first look back; the concurrent ones share it.
    const first = await flood();
    expect(first[0]!.message).to.contain('(the key set was refetched)');
    expect(issuer.requests.jwks).to.equal(start + 1);
    clock.advance(provider.jwksCooldownSeconds - 1);
    const cooling = await flood();
    expect(cooling[0]!.message).to.contain(
      `refetched for an unknown kid less than ${provider.jwksCooldownSeconds}s ago`,
    );
    expect(issuer.requests.jwks).to.equal(start + 1);
    clock.advance(1);
    await flood();
    await flood();
    expect(issuer.requests.jwks).to.equal(start + 2);
  });

  describe('a key rotation is picked up at once', () => {
    let rotating: DevIssuer;
    let clock: ReturnType<typeof fakeClock>;
    let source: KeySource;

    beforeEach(async () => {
      rotating = await DevIssuer.start();
      clock = fakeClock();
      source = new KeySource(testProvider(rotating), { now: clock.now });
      await source.prefetch();
    });

    afterEach(() => rotating.close());

    it('right after start-up, by every concurrent request with one fetch', async () => {
      const kid = await rotating.rotate();
      const found = await Promise.all(
        Array.from({ length: 10 }, () => source.keysFor(kid, 'RS256')),
      );
      expect(found.map((keys) => keys.length)).to.deep.equal(Array(10).fill(1));
      expect(rotating.requests.jwks).to.equal(2);
    });

    it('right after a background refresh', async () => {
      clock.advance(provider.jwksCacheMaxAgeSeconds + 1);
      await source.keysFor(rotating.currentKid, 'RS256');
      await eventually(() => source.stats.refreshes === 2);
      const kid = await rotating.rotate();
      expect(await source.keysFor(kid, 'RS256')).to.have.length(1);
      expect(rotating.requests.jwks).to.equal(3);
    });

    it('through the Authenticator, for a token signed with the new key', async () => {
      const auth = new Authenticator([testProvider(rotating)], { now: clock.now });
      await auth.prefetch();
      await rotating.rotate();
      const token = await rotating.mint({ sub: 'rotated' });
      expect((await auth.authenticate(`Bearer ${token}`)).subject).to.equal('rotated');
    });
  });

  it('accepts a rotated key after the refetch, and keeps accepting the old one while published', async () => {
    const rotating = await DevIssuer.start();
    try {
      const clock = fakeClock();
      const auth = new Authenticator([testProvider(rotating)], { now: clock.now });
      await auth.prefetch();
      const oldToken = await rotating.mint({ sub: 'old' });
      const kid = await rotating.rotate();
      expect(kid).not.to.equal(rotating.jwks().keys[0]!.kid);
      const newToken = await rotating.mint({ sub: 'new' });
      clock.advance(31);
      expect((await auth.authenticate(`Bearer ${newToken}`)).subject).to.equal('new');
      expect((await auth.authenticate(`Bearer ${oldToken}`)).subject).to.equal('old');
      expect(rotating.requests.jwks).to.equal(2);

      // Once the IdP stops publishing a key, tokens it signed fail after the next refetch.
      const signedByRetired = await rotating.mint({ sub: 'retired' });
      await rotating.rotate({ retireOld: true });
      clock.advance(31);
      expect(
        (await auth.authenticate(`Bearer ${await rotating.mint({ sub: 'newest' })}`)).subject,
      ).to.equal('newest');
      await rejectsWith(auth.authenticate(`Bearer ${signedByRetired}`), 'unknown_kid');
    } finally {
      await rotating.close();
    }
  });

  it('keeps serving cached keys while the IdP is down', async () => {
    const clock = fakeClock();
    const source = new KeySource(provider, { now: clock.now });
    await source.prefetch();
    issuer.setDown(true);
    clock.advance(provider.jwksCacheMaxAgeSeconds + 1);
    // Past max age: the current keys answer at once and a background refresh is attempted.
    expect(await source.keysFor(issuer.currentKid, 'RS256')).to.have.length(1);
    await eventually(() => source.stats.failures === 1);
    expect(source.ready).to.equal(true);
    expect(source.stats.lastError).to.contain('HTTP 503');
    expect(await source.keysFor(issuer.currentKid, 'RS256')).to.have.length(1);
    clock.advance(31);
    const err = await rejectsWith(source.keysFor('rotated', 'RS256'), 'unknown_kid');
    expect(err.message).to.contain('could not be refetched');
  });

  it('refreshes in the background once the key set is older than its max age', async () => {
    const clock = fakeClock();
    const source = new KeySource(provider, { now: clock.now });
    await source.prefetch();
    clock.advance(provider.jwksCacheMaxAgeSeconds - 1);
    await source.keysFor(issuer.currentKid, 'RS256');
    expect(source.stats.refreshes).to.equal(1);
    clock.advance(2);
    await source.keysFor(issuer.currentKid, 'RS256');
    await eventually(() => source.stats.refreshes === 2);
  });

  it('fails fast with jwks_unavailable, retrying the IdP at most once a second', async () => {
    const clock = fakeClock();
    const { fetch, calls } = fakeFetch({
      'https://idp.example/.well-known/openid-configuration': 503,
    });
    const source = new KeySource(testProvider('https://idp.example'), { now: clock.now, fetch });
    await rejectsWith(source.keysFor('k', 'RS256'), 'jwks_unavailable');
    await rejectsWith(source.keysFor('k', 'RS256'), 'jwks_unavailable');
    expect(calls).to.have.length(1);
    clock.advance(1);
    await rejectsWith(source.keysFor('k', 'RS256'), 'jwks_unavailable');
    expect(calls).to.have.length(2);
  });

  describe('key selection', () => {
    const jwksUri = 'https://idp.example/jwks';
    const withKeys = (keys: unknown[], overrides: Partial<ProviderConfig> = {}) => {
      const fake = fakeFetch({ [jwksUri]: { keys } });
      return {
        source: new KeySource(testProvider('https://idp.example', { jwksUri, ...overrides }), {
          fetch: fake.fetch,
        }),
        calls: fake.calls,
      };
    };
    const rsaJwk = () => issuer.jwks().keys[0]!;

    it('imports only asymmetric signature keys', async () => {
      const { source } = withKeys([
        { kty: 'oct', kid: 'hmac', k: 'c2VjcmV0' },
        { ...rsaJwk(), kid: 'enc', use: 'enc' },
        { ...rsaJwk(), kid: 'wrap', use: undefined, key_ops: ['wrapKey'] },
        rsaJwk(),
      ]);
      expect(await source.prefetch()).to.equal(undefined);
      expect(source.stats.keys).to.equal(1);
      await rejectsWith(source.keysFor('hmac', 'RS256'), 'unknown_kid');
      await rejectsWith(source.keysFor('enc', 'RS256'), 'unknown_kid');
    });

    it('treats a key set without usable keys as a failure', async () => {
      const { source } = withKeys([{ kty: 'oct', kid: 'hmac', k: 'c2VjcmV0' }]);
      expect((await source.prefetch())?.message).to.contain('no usable signature keys');
      expect(source.ready).to.equal(false);
    });

    it("refuses a token alg that differs from the key's declared alg or type", async () => {
      const { source } = withKeys([{ ...rsaJwk(), alg: 'RS512' }]);
      const err = await rejectsWith(source.keysFor(rsaJwk().kid, 'RS256'), 'alg_not_allowed');
      expect(err.message).to.contain('is for RS512, not RS256');
      await rejectsWith(source.keysFor(rsaJwk().kid, 'ES256'), 'alg_not_allowed');
      expect(await source.keysFor(rsaJwk().kid, 'RS512')).to.have.length(1);
    });

    it('offers every fitting key to a token without kid', async () => {
      const second = { ...rsaJwk(), kid: 'second' };
      const { source } = withKeys([rsaJwk(), second]);
      expect(await source.keysFor(undefined, 'RS256')).to.have.length(2);
      await rejectsWith(source.keysFor(undefined, 'ES256'), 'unknown_kid');
    });
  });
});
