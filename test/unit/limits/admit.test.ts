/**
 * Rate limits and token budgets counted together: the admission stage makes one store call for
 * both planners, and a refusal by either counts in neither.
 */
import { expect } from 'chai';
import type { Config, RateLimitConfig } from '../../../src/config/schema.js';
import { admitter } from '../../helpers/unit.js';
import { BudgetPlanner } from '../../../src/budgets/planner.js';
import { RateLimitPlanner, type RateLimitResult } from '../../../src/limits/rate-limit.js';
import type { PlanGrant, PlanVerdict } from '../../../src/limits/admit.js';
import type { Denial } from '../../../src/domain/decision.js';
import { GuardedStore } from '../../../src/store/guarded.js';
import { MemoryStore } from '../../../src/store/memory.js';
import type { AdmitRequest, AdmitResult, Store } from '../../../src/store/store.js';
import { budget, config, ctx, T0 } from '../budgets/helpers.js';
import { hitWindows } from '../store/admit-helpers.js';

const TENANT_KEY = 'tb:tenant:acme:2026-11';

function limit(over: Partial<RateLimitConfig> & Pick<RateLimitConfig, 'name'>): RateLimitConfig {
  return { match: { claims: {} }, requestsPerUnit: 10, unit: 'minute', key: 'user', ...over };
}

/** Three limits and two budgets apply to the helpers' chat request by ann (tenant acme). */
function cfg(
  over: { perUserLimit?: number; tenantTokens?: number; fitToBudget?: 'refuse' | 'cap' } = {},
): Config {
  const base = config([
    budget({ tenant: 'acme', maxTokens: over.tenantTokens ?? 100_000 }),
    budget({ user: 'ann@myorg.com', maxTokens: 50_000, period: 'day' }),
  ]);
  return {
    ...base,
    metering: {
      ...base.metering,
      ...(over.fitToBudget !== undefined ? { fitToBudget: over.fitToBudget } : {}),
    },
    rateLimits: [
      limit({ name: 'per-user', requestsPerUnit: over.perUserLimit ?? 10 }),
      limit({ name: 'per-tenant', requestsPerUnit: 100, unit: 'hour', key: 'tenant' }),
      limit({
        name: 'chat',
        match: { path: '/v1/chat/*', claims: {} },
        requestsPerUnit: 5,
        unit: 'second',
      }),
    ],
  };
}

/** A store that records every admit call and can be told to fail. */
function recording(inner: Store = new MemoryStore()) {
  const calls: AdmitRequest[] = [];
  let failing = false;
  const store: Store = Object.assign(Object.create(inner) as Store, {
    admit(request: AdmitRequest, now: number): Promise<AdmitResult> {
      calls.push(request);
      return failing ? Promise.reject(new Error('ECONNREFUSED')) : inner.admit(request, now);
    },
  });
  return { store, calls, fail: () => (failing = true) };
}

function setup(config: Config, store: Store) {
  const outcomes: [string, RateLimitResult][] = [];
  const stage = admitter(
    [
      new RateLimitPlanner(config, { onOutcome: (name, result) => outcomes.push([name, result]) }),
      new BudgetPlanner(config),
    ],
    store,
  );
  return { stage, outcomes };
}

function granted(r: PlanVerdict): PlanGrant {
  if (!('ok' in r)) throw new Error(`expected ok, got ${JSON.stringify(r)}`);
  return r.ok;
}

function denied(r: PlanVerdict): Denial {
  if (!('deny' in r)) throw new Error(`expected deny, got ${JSON.stringify(r)}`);
  return r.deny;
}

describe('limits/admit: rate limits and budgets in one store call', () => {
  it('asks the store once for 3 limits and 2 budgets, and grants both planners’ headers', async () => {
    const { store, calls } = recording();
    const { stage, outcomes } = setup(cfg(), store);
    const g = granted(await stage.run(ctx({ maxTokens: 10, handoffId: 'adm-1' })));
    expect(calls).to.have.length(1);
    expect(calls[0]?.windows.map((w) => w.key)).to.deep.equal([
      'rl:per-user:ann%40myorg.com',
      'rl:per-tenant:acme',
      'rl:chat:ann%40myorg.com',
    ]);
    expect(calls[0]?.budgets.map((b) => b.key)).to.deep.equal([
      TENANT_KEY,
      'tb:user:ann%40myorg.com:2026-11-15',
    ]);
    expect(calls[0]).to.include({ reservationId: 'adm-1', ttlMs: 900_000 });
    const amount = g.reservation?.reserved[0] ?? 0;
    expect(amount).to.be.greaterThan(10);
    expect(g.responseHeaders).to.deep.equal({
      'x-ratelimit-limit-requests': '5',
      'x-ratelimit-remaining-requests': '4',
      'x-ratelimit-reset-requests': '1s',
      'x-ratelimit-limit-tokens': '50000',
      'x-ratelimit-remaining-tokens': String(50_000 - amount),
      'x-ratelimit-reset-tokens': '12h0m0s',
    });
    expect(g.reservation).to.include({ id: 'adm-1' });
    expect(g.promptEstimate).to.equal(amount - 10);
    expect(g.metadata).to.deep.equal({ budgets: 'tenant:acme,user:ann@myorg.com' });
    expect(outcomes).to.deep.equal([
      ['per-user', 'allowed'],
      ['per-tenant', 'allowed'],
      ['chat', 'allowed'],
    ]);
  });

  it('a request refused by a budget uses no rate-limit window and reports no limit outcome', async () => {
    const store = new MemoryStore();
    const { stage, outcomes } = setup(cfg({ tenantTokens: 100, fitToBudget: 'cap' }), store);
    granted(await stage.run(ctx({ maxTokens: 500, handoffId: 'a' }))); // capped to all 100
    outcomes.length = 0;
    for (let i = 0; i < 3; i += 1) {
      const d = denied(await stage.run(ctx({ maxTokens: 1, now: T0 + 1 + i })));
      expect(d).to.include({ status: 429, reason: 'budget_exhausted', rule: 'tenant:acme' });
      expect(d.headers['x-should-retry']).to.equal('false');
    }
    expect(outcomes).to.deep.equal([]);
    // Only the first request was counted: chat (5 a second) has 3 left after the next one.
    await store.release([{ key: TENANT_KEY, expiresAtMs: Date.UTC(2026, 11, 1) }], 'a', T0);
    const next = granted(await stage.run(ctx({ maxTokens: 1, now: T0 + 10 })));
    expect(next.responseHeaders?.['x-ratelimit-remaining-requests']).to.equal('3'); // chat: 5/s
  });

  it('a request refused by a rate limit reserves no tokens', async () => {
    const store = new MemoryStore();
    const { stage, outcomes } = setup(cfg({ perUserLimit: 1 }), store);
    const first = granted(await stage.run(ctx({ maxTokens: 10, handoffId: 'a' })));
    outcomes.length = 0;
    const d = denied(await stage.run(ctx({ maxTokens: 10, handoffId: 'b', now: T0 + 1 })));
    expect(d).to.include({ status: 429, reason: 'rate_limited', rule: 'per-user' });
    expect(d.headers['x-ratelimit-limit-requests']).to.equal('1');
    expect(outcomes).to.deep.equal([['per-user', 'limited']]);
    expect((await store.readBudget(TENANT_KEY, T0 + 1)).reserved).to.equal(
      first.reservation?.reserved[0],
    );
  });

  it('needs no store call when nothing applies', async () => {
    const { store, calls } = recording();
    const { stage } = setup({ ...config([]), rateLimits: [] }, store);
    expect(await stage.run(ctx({ method: 'GET', path: '/v1/models' }))).to.deep.equal({ ok: {} });
    const g = granted(await stage.run(ctx({ maxTokens: 3 })));
    // The model is priced (built-in table): the price travels for cost reporting.
    expect(Object.keys(g)).to.deep.equal(['promptEstimate', 'price']);
    expect(calls).to.have.length(0);
  });

  describe('store unavailable', () => {
    it('closed: one 503 worded by the rate limits, which report unavailable', async () => {
      const { store, calls, fail } = recording();
      fail();
      const guarded = new GuardedStore(store, { timeoutMs: 50, onUnavailable: 'closed' });
      const { stage, outcomes } = setup(cfg(), guarded);
      const d = denied(await stage.run(ctx()));
      expect(d).to.include({ status: 503, reason: 'store_unavailable' });
      expect(d.message).to.equal('The rate-limit store is unavailable. Please try again shortly.');
      expect(d.headers).to.deep.equal({ 'retry-after': '1' });
      expect(outcomes.map(([, r]) => r)).to.deep.equal([
        'unavailable',
        'unavailable',
        'unavailable',
      ]);
      expect(calls).to.have.length(1);
      expect(guarded.stats()).to.include({ errors: 1, fallbacks: 1 });
    });

    it('closed: with budgets alone, the 503 is worded by the budgets', async () => {
      const { store, fail } = recording();
      fail();
      const { stage } = setup({ ...cfg(), rateLimits: [] }, store);
      expect(denied(await stage.run(ctx())).message).to.equal(
        'The token budget store is unavailable. Please try again shortly.',
      );
    });

    it('open: admits, counts nothing, advertises nothing, flags both in metadata', async () => {
      const { store, fail } = recording();
      fail();
      const guarded = new GuardedStore(store, { timeoutMs: 50, onUnavailable: 'open' });
      const g = granted(await setup(cfg(), guarded).stage.run(ctx({ maxTokens: 5 })));
      expect(g.responseHeaders).to.equal(undefined);
      expect(g.reservation?.reserved).to.deep.equal([0, 0]);
      expect(g.metadata).to.deep.equal({
        rateLimitDegraded: 'open',
        budgets: 'tenant:acme,user:ann@myorg.com',
        budgetDegraded: 'open',
      });
    });

    it('local: both are counted on this replica, together', async () => {
      const { store, fail } = recording();
      fail();
      const local = new MemoryStore();
      const guarded = new GuardedStore(store, { timeoutMs: 50, onUnavailable: 'local', local });
      const { stage } = setup(cfg({ tenantTokens: 100, fitToBudget: 'cap' }), guarded);
      const g = granted(await stage.run(ctx({ maxTokens: 500 })));
      expect(g.responseHeaders?.['x-ratelimit-remaining-requests']).to.equal('4');
      expect(g.responseHeaders?.['x-ratelimit-remaining-tokens']).to.equal('0');
      expect(g.metadata).to.include({ rateLimitDegraded: 'local', budgetDegraded: 'local' });
      expect(denied(await stage.run(ctx({ now: T0 + 1 }))).reason).to.equal('budget_exhausted');
      // the refused request took no window from the local counters either
      const chat = { key: 'rl:chat:ann%40myorg.com', limit: 5, windowMs: 1000 };
      expect((await hitWindows(local, [chat], T0 + 2)).windows[0]?.remaining).to.equal(3);
    });
  });
});
