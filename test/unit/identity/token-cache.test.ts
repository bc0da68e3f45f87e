import { expect } from 'chai';
import type { Identity } from '../../../src/domain/identity.js';
import { entryBytes, VerifiedTokenCache } from '../../../src/identity/token-cache.js';

const identity = (user: string, expiresAt = 2_000): Identity => ({
  provider: 'p',
  issuer: 'https://idp.example',
  subject: user,
  user,
  groups: [],
  claims: { sub: user },
  expiresAt,
});

describe('identity/token-cache: VerifiedTokenCache', () => {
  it('charges each entry by its token size and gives the bytes back on eviction, expiry and clear', () => {
    const cache = new VerifiedTokenCache(10, entryBytes(100) + entryBytes(200));
    cache.set('a', identity('a'), 0, 100);
    cache.set('b', identity('b', 1_000), 0, 200);
    expect(cache.bytes).to.equal(entryBytes(100) + entryBytes(200));
    // The same hash again replaces its entry rather than adding to the total.
    cache.set('a', identity('a'), 0, 100);
    expect([cache.size, cache.bytes]).to.deep.equal([2, entryBytes(100) + entryBytes(200)]);
    expect(cache.get('b', 1_000)).to.equal(undefined); // expired: dropped
    expect([cache.size, cache.bytes]).to.deep.equal([1, entryBytes(100)]);
    cache.clear();
    expect([cache.size, cache.bytes]).to.deep.equal([0, 0]);
  });

  it('evicts the least recently used entries until the bytes fit', () => {
    const cache = new VerifiedTokenCache(10, 3 * entryBytes(100));
    for (const h of ['a', 'b', 'c']) cache.set(h, identity(h), 0, 100);
    expect(cache.get('a', 0)?.user).to.equal('a'); // a is now the most recent
    cache.set('d', identity('d'), 0, 1 + (entryBytes(100) - entryBytes(0)) * 2); // needs two slots' room
    expect(['a', 'b', 'c', 'd'].map((h) => cache.get(h, 0)?.user)).to.deep.equal(['a', undefined, undefined, 'd']);
    expect(cache.bytes).to.be.at.most(3 * entryBytes(100));
  });

  it('keeps the entry bound as well', () => {
    const cache = new VerifiedTokenCache(2);
    for (const h of ['a', 'b', 'c']) cache.set(h, identity(h), 0, 10);
    expect([cache.size, cache.bytes]).to.deep.equal([2, 2 * entryBytes(10)]);
    expect(cache.get('a', 0)).to.equal(undefined);
  });

  it('caches nothing with 0 entries, or an entry larger than the whole bound', () => {
    const none = new VerifiedTokenCache(0);
    none.set('a', identity('a'), 0, 10);
    const small = new VerifiedTokenCache(10, entryBytes(10));
    small.set('a', identity('a'), 0, 11);
    small.set('b', identity('b'), 0, 10);
    expect([none.size, small.size, small.bytes]).to.deep.equal([0, 1, entryBytes(10)]);
  });
});
