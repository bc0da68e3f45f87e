import { expect } from 'chai';
import { cookieName, csrfMatches, ExpiringMap, parseCookies, randomId, setCookie } from '../../../src/portal/session.js';

describe('portal: sessions', () => {
  it('gives 256-bit random ids, never twice the same', () => {
    const ids = new Set(Array.from({ length: 1000 }, () => randomId()));
    expect(ids.size).to.equal(1000);
    for (const id of ids) expect(id).to.match(/^[A-Za-z0-9_-]{43}$/);
  });

  it('forgets an entry after its ttl or its own deadline, whichever comes first', () => {
    let now = 1000;
    const map = new ExpiringMap<string>({ ttlMs: 100, max: 10, now: () => now });
    const a = map.put('a');
    const b = map.put('b', 1050);
    expect(map.get(a)).to.equal('a');
    expect(map.get(b)).to.equal('b');
    now = 1050;
    expect(map.get(b)).to.equal(undefined);
    expect(map.get(a)).to.equal('a');
    now = 1100;
    expect(map.get(a)).to.equal(undefined);
    expect(map.get(undefined)).to.equal(undefined);
    expect(map.get('no-such-id')).to.equal(undefined);
  });

  it('stays within its size bound, dropping the oldest', () => {
    const map = new ExpiringMap<number>({ ttlMs: 60_000, max: 3 });
    const ids = [1, 2, 3, 4, 5].map((v) => map.put(v));
    expect(map.size).to.equal(3);
    expect(map.get(ids[0])).to.equal(undefined);
    expect(map.get(ids[1])).to.equal(undefined);
    expect(map.get(ids[4])).to.equal(5);
  });

  it('take() hands a sign-in state out once', () => {
    const map = new ExpiringMap<string>({ ttlMs: 60_000, max: 3 });
    const id = map.put('state');
    expect(map.take(id)).to.equal('state');
    expect(map.take(id)).to.equal(undefined);
  });

  it('checks CSRF tokens exactly (empty and missing refused)', () => {
    const t = randomId();
    expect(csrfMatches(t, t)).to.equal(true);
    expect(csrfMatches(t, `${t}x`)).to.equal(false);
    expect(csrfMatches(t, t.slice(1))).to.equal(false);
    expect(csrfMatches(t, '')).to.equal(false);
    expect(csrfMatches(t, undefined)).to.equal(false);
  });

  it('writes HttpOnly, SameSite=Lax cookies, Secure and __Host- over https', () => {
    expect(setCookie('s', 'v', { secure: false, maxAge: 60 })).to.equal('s=v; Path=/; HttpOnly; SameSite=Lax; Max-Age=60');
    expect(setCookie('s', 'v', { secure: true, maxAge: 0 })).to.equal('s=v; Path=/; HttpOnly; SameSite=Lax; Max-Age=0; Secure');
    expect(cookieName('tollgate_portal', true)).to.equal('__Host-tollgate_portal');
    expect(cookieName('tollgate_portal', false)).to.equal('tollgate_portal');
  });

  it('reads cookies, first value of a name winning', () => {
    const c = parseCookies('a=1; b = 2 ;a=3; junk; =x');
    expect([...c]).to.deep.equal([
      ['a', '1'],
      ['b', '2'],
    ]);
    expect(parseCookies(undefined).size).to.equal(0);
  });
});
