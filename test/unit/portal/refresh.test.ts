/**
 * A portal session's token refresh, without sockets: a fake IdP (the refresh function) and a fake
 * authenticator. What is checked: no refresh with time left, one refresh for concurrent callers,
 * the session updated (identity, token, rotated refresh token) under its first deadline, and a
 * session ended on a failed refresh or on a token that names another identity.
 */
import { expect } from 'chai';
import type { Identity } from '../../../src/domain/identity.js';
import type { SignedIn } from '../../../src/portal/oidc.js';
import { SessionRefresher, type PortalSession } from '../../../src/portal/refresh.js';
import { ExpiringMap } from '../../../src/portal/session.js';
import { logSink } from '../../helpers/unit.js';

const T0 = 1_700_000_000_000;

function identity(subject: string, expiresAt: number, provider = 'corp'): Identity {
  return { provider, issuer: 'https://idp.example.com', subject, user: `${subject}@example.com`, groups: [], claims: { sub: subject }, expiresAt };
}

describe('portal: session refresh', () => {
  let clock: number;
  let sessions: ExpiringMap<PortalSession>;
  let calls: string[];
  let answer: (rt: string) => Promise<SignedIn>;
  let subjectOf: (token: string) => Identity;
  let refresher: SessionRefresher;
  let log: ReturnType<typeof logSink>;

  beforeEach(() => {
    clock = T0;
    calls = [];
    log = logSink();
    sessions = new ExpiringMap<PortalSession>({ ttlMs: 3600_000, max: 10, now: () => clock });
    answer = (rt) => Promise.resolve({ token: `new-token-${calls.length}`, refreshToken: `${rt}+` });
    subjectOf = () => identity('ada', clock / 1000 + 300);
    refresher = new SessionRefresher({
      sessions,
      refresh: async (rt) => {
        calls.push(rt);
        await new Promise((r) => setTimeout(r, 5));
        return answer(rt);
      },
      verifier: () => ({ authenticate: (header) => Promise.resolve(subjectOf((header ?? '').slice('Bearer '.length))) }),
      logger: log.logger,
      now: () => clock,
    });
  });

  const plant = (expiresInS: number, refreshToken: string | null = 'rt-1'): { id: string; session: PortalSession } => {
    const session: PortalSession = { identity: identity('ada', T0 / 1000 + expiresInS), token: 'old-token', csrf: 'c', ...(refreshToken !== null ? { refreshToken } : {}) };
    return { id: sessions.put(session), session };
  };

  it('leaves a token with a minute or more left, and a session without a refresh token, alone', async () => {
    const a = plant(61);
    expect(await refresher.fresh(a.id, a.session)).to.deep.equal({ session: a.session });
    const b = plant(10, null);
    expect(await refresher.fresh(b.id, b.session)).to.deep.equal({ session: b.session });
    expect(calls).to.deep.equal([]);
  });

  it('refreshes once for concurrent requests and updates the session under its first deadline', async () => {
    const { id, session } = plant(59);
    const all = await Promise.all([refresher.fresh(id, session), refresher.fresh(id, session), refresher.fresh(id, session)]);
    expect(calls).to.deep.equal(['rt-1']);
    for (const r of all) expect(r).to.deep.include({ session: { identity: identity('ada', T0 / 1000 + 300), token: 'new-token-1', refreshToken: 'rt-1+', csrf: 'c' } });
    expect(sessions.get(id)?.token).to.equal('new-token-1');
    clock = T0 + 3600_000;
    expect(sessions.get(id), 'bounded by sessionTtlSeconds from sign-in').to.equal(undefined);
    expect(log.raw.join('\n')).to.not.include('rt-1').and.not.include('new-token');
  });

  it('keeps the refresh token when the IdP does not rotate it', async () => {
    answer = () => Promise.resolve({ token: 'new' });
    const { id, session } = plant(0);
    const r = await refresher.fresh(id, session);
    expect(r).to.have.nested.property('session.refreshToken', 'rt-1');
  });

  it('ends the session when the IdP refuses the refresh token or cannot be reached', async () => {
    answer = () => Promise.reject(new Error('invalid_grant'));
    const { id, session } = plant(30);
    expect(await refresher.fresh(id, session)).to.deep.equal({ ended: 'invalid_grant' });
    expect(sessions.get(id)).to.equal(undefined);
    expect(log.lines.at(-1)).to.include({ msg: 'portal: session ended: its token could not be refreshed', reason: 'invalid_grant' });
  });

  it('ends the session when the new token is not accepted by the authenticator', async () => {
    subjectOf = () => {
      throw new Error('token expired');
    };
    const { id, session } = plant(30);
    expect(await refresher.fresh(id, session)).to.deep.equal({ ended: 'token expired' });
    expect(sessions.get(id)).to.equal(undefined);
  });

  for (const [what, other] of [
    ['subject', identity('eve', T0 / 1000 + 300)],
    ['provider', identity('ada', T0 / 1000 + 300, 'partner')],
  ] as const) {
    it(`refuses a refresh that changes the ${what}: the session ends`, async () => {
      subjectOf = () => other;
      const { id, session } = plant(30);
      expect(await refresher.fresh(id, session)).to.deep.equal({ ended: 'the refreshed token names another identity' });
      expect(sessions.get(id)).to.equal(undefined);
    });
  }

  it('does not bring back a session signed out while its refresh ran', async () => {
    const { id, session } = plant(30);
    const running = refresher.fresh(id, session);
    sessions.delete(id);
    expect(await running).to.have.property('ended');
    expect(sessions.get(id)).to.equal(undefined);
  });
});
