import { expect } from 'chai';
import type { TokenBudgetConfig } from '../../../src/config/schema.js';
import { estimateReservation } from '../../../src/metering/estimate.js';
import { periodWindow } from '../../../src/metering/period.js';
import { AdmissionStage } from '../../../src/pipeline/admit.js';
import {
  applicableBudgets,
  budgetKey,
  BudgetPlanner,
  DEFAULT_RESERVATION_TTL_SECONDS,
} from '../../../src/pipeline/budget-reserve.js';
import type { StageGrant, StageResult } from '../../../src/pipeline/stage.js';
import type { Denial } from '../../../src/pipeline/types.js';
import { GuardedStore } from '../../../src/store/guarded.js';
import { MemoryStore } from '../../../src/store/memory.js';
import type { AdmitRequest, AdmitResult, BudgetItem, Store } from '../../../src/store/store.js';
import { budget, config, ctx, identity, T0 } from './helpers.js';

function granted(r: StageResult): StageGrant {
  if (!('ok' in r)) throw new Error(`expected ok, got ${JSON.stringify(r)}`);
  return r.ok;
}

function denied(r: StageResult): Denial {
  if (!('deny' in r)) throw new Error(`expected deny, got ${JSON.stringify(r)}`);
  return r.deny;
}

/** Records the budgets of every admit call of a store. */
function recording(inner: Store = new MemoryStore()) {
  const calls: { items: BudgetItem[]; id: string; ttlMs: number; now: number }[] = [];
  const store: Store = Object.assign(Object.create(inner) as Store, {
    admit(request: AdmitRequest, now: number): Promise<AdmitResult> {
      const { budgets, reservationId: id, ttlMs } = request;
      calls.push({ items: [...budgets], id, ttlMs, now });
      return inner.admit(request, now);
    },
  });
  return { store, calls };
}

/** The budget planner alone, run as the Gateway runs it: through the admission stage. */
function budgetStage(cfg: ConstructorParameters<typeof BudgetPlanner>[0], store: Store): AdmissionStage {
  return new AdmissionStage([new BudgetPlanner(cfg)], store);
}

/** The estimate the stage reserves for the helpers' chat request. */
function estimateFor(maxTokens: number): number {
  const body = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: maxTokens };
  return estimateReservation('/v1/chat/completions', body, 'gpt-4o-mini', 100).total;
}

describe('budget/applicable budgets', () => {
  const budgets: TokenBudgetConfig[] = [
    budget({ tenant: 'acme', maxTokens: 1 }),
    budget({ tenant: 'other', maxTokens: 2 }),
    budget({ group: 'ml-team', maxTokens: 3 }),
    budget({ group: 'sales', maxTokens: 4 }),
    budget({ user: 'ann@myorg.com', maxTokens: 5 }),
    budget({ user: 'bob@myorg.com', maxTokens: 6 }),
  ];

  it('charges the tenant, each of the groups and the user, and nobody else', () => {
    const who = identity({ tenant: 'acme', groups: ['eng', 'ml-team'], user: 'ann@myorg.com' });
    expect(applicableBudgets(budgets, who).map((b) => b.maxTokens)).to.deep.equal([1, 3, 5]);
  });

  it('matches exactly: no tenant claim, other groups, or a differently spelled user match nothing', () => {
    const who = { ...identity(), tenant: undefined, groups: ['ML-team'], user: 'Ann@myorg.com' };
    expect(applicableBudgets(budgets, who)).to.deep.equal([]);
  });
});

describe('budget/keys and periods', () => {
  const key = (b: TokenBudgetConfig, now: number) => budgetKey(b, periodWindow(b.period, b.timeZone, now));

  it('names one counter per subject and calendar period', () => {
    expect(key(budget({ tenant: 'acme', maxTokens: 1 }), T0)).to.equal('tb:tenant:acme:2026-11');
    expect(key(budget({ group: 'ml-team', maxTokens: 1, period: 'week' }), T0)).to.equal('tb:group:ml-team:2026-W46');
    expect(key(budget({ user: 'a:b@x', maxTokens: 1, period: 'day' }), T0)).to.equal('tb:user:a%3Ab%40x:2026-11-15');
    expect(key(budget({ tenant: 'acme', maxTokens: 1, period: 'hour' }), T0)).to.equal('tb:tenant:acme:2026-11-15T12');
  });

  it('rolls over at the month boundary in UTC', () => {
    const b = budget({ tenant: 'acme', maxTokens: 1 });
    const boundary = Date.UTC(2026, 11, 1);
    expect(key(b, boundary - 1)).to.equal('tb:tenant:acme:2026-11');
    expect(key(b, boundary)).to.equal('tb:tenant:acme:2026-12');
  });

  it('rolls over at local midnight in a non-UTC zone', () => {
    const b = budget({ tenant: 'acme', maxTokens: 1, timeZone: 'Asia/Tokyo' });
    // Midnight 1 December in Tokyo (UTC+9) is 15:00 UTC on 30 November.
    const boundary = Date.UTC(2026, 10, 30, 15);
    expect(key(b, boundary - 1)).to.equal('tb:tenant:acme:2026-11');
    expect(key(b, boundary)).to.equal('tb:tenant:acme:2026-12');
  });

  it('has a leap day of its own and a 29-day February', () => {
    const day = budget({ tenant: 'acme', maxTokens: 1, period: 'day' });
    expect(key(day, Date.UTC(2028, 1, 29, 23, 59))).to.equal('tb:tenant:acme:2028-02-29');
    expect(key(day, Date.UTC(2028, 2, 1))).to.equal('tb:tenant:acme:2028-03-01');
    const feb = periodWindow('month', 'UTC', Date.UTC(2028, 1, 10));
    expect(feb.endMs - feb.startMs).to.equal(29 * 86_400_000);
  });
});

describe('budget/BudgetPlanner (through the admission stage)', () => {
  it('reserves prompt estimate + max_tokens in every applicable budget in one call, under the admission id', async () => {
    const { store, calls } = recording();
    const budgets = [budget({ tenant: 'acme', maxTokens: 10_000 }), budget({ user: 'ann@myorg.com', maxTokens: 5_000, period: 'day' })];
    const stage = budgetStage(config(budgets), store);
    const grant = granted(await stage.run(ctx({ maxTokens: 50, admissionId: 'adm-1' })));
    const amount = estimateFor(50);
    expect(calls).to.have.length(1);
    expect(calls[0]).to.deep.equal({
      id: 'adm-1',
      ttlMs: DEFAULT_RESERVATION_TTL_SECONDS * 1000,
      now: T0,
      items: [
        { key: 'tb:tenant:acme:2026-11', limit: 10_000, amount, minAmount: 1, expiresAtMs: Date.UTC(2026, 11, 1) },
        { key: 'tb:user:ann%40myorg.com:2026-11-15', limit: 5_000, amount, minAmount: 1, expiresAtMs: Date.UTC(2026, 10, 16) },
      ],
    });
    expect(grant.reservation).to.deep.equal({
      id: 'adm-1',
      budgets: [
        { key: 'tb:tenant:acme:2026-11', expiresAtMs: Date.UTC(2026, 11, 1) },
        { key: 'tb:user:ann%40myorg.com:2026-11-15', expiresAtMs: Date.UTC(2026, 10, 16) },
      ],
      names: ['tenant:acme', 'user:ann@myorg.com'],
      reserved: [amount, amount],
    });
    expect(grant.promptEstimate).to.equal(amount - 50);
    // The user's daily budget has less left: it is the one advertised.
    expect(grant.responseHeaders).to.deep.equal({
      'x-ratelimit-limit-tokens': '5000',
      'x-ratelimit-remaining-tokens': String(5000 - amount),
      'x-ratelimit-reset-tokens': '12h0m0s',
    });
    expect(grant.metadata).to.deep.equal({ budgets: 'tenant:acme,user:ann@myorg.com' });
  });

  it('takes the reservation TTL from metering.reservationTtlSeconds', async () => {
    const { store, calls } = recording();
    const cfg = config([budget({ maxTokens: 1000 })]);
    const stage = budgetStage({ ...cfg, metering: { ...cfg.metering, reservationTtlSeconds: 60 } }, store);
    granted(await stage.run(ctx()));
    expect(calls[0]?.ttlMs).to.equal(60_000);
  });

  it('does not touch the store for unmetered requests, and still estimates metered ones without a budget', async () => {
    const { store, calls } = recording();
    const stage = budgetStage(config([budget({ maxTokens: 1000 })]), store);
    expect(await stage.run(ctx({ method: 'GET', path: '/v1/models' }))).to.deep.equal({ ok: {} });
    expect(await stage.run(ctx({ method: 'GET', path: '/v1/chat/completions' }))).to.deep.equal({ ok: {} });
    expect(await stage.run(ctx({ path: '/v1/files' }))).to.deep.equal({ ok: {} });
    const nobody = granted(await stage.run(ctx({ who: identity({ tenant: 'other', groups: [], user: 'x' }), maxTokens: 7 })));
    expect(nobody).to.deep.equal({ promptEstimate: estimateFor(7) - 7 });
    expect(calls).to.have.length(0);
  });

  it('clamps a large estimate to the room left, then refuses with insufficient_quota until the period ends', async () => {
    const stage = budgetStage(config([budget({ tenant: 'acme', maxTokens: 1000 })], 4096), new MemoryStore());
    // No max_tokens: the default cap (4096) is larger than the budget, and still admitted.
    const first = granted(await stage.run(ctx()));
    expect(first.reservation?.reserved).to.deep.equal([1000]);
    expect(first.responseHeaders?.['x-ratelimit-remaining-tokens']).to.equal('0');

    const now = T0 + 1000;
    const d = denied(await stage.run(ctx({ now })));
    const resetMs = Date.UTC(2026, 11, 1) - now;
    expect(d).to.deep.equal({
      status: 429,
      reason: 'budget_exhausted',
      type: 'insufficient_quota',
      code: 'insufficient_quota',
      message: `You exceeded your token budget tenant:acme for this month (1000 tokens). It resets in 371h59m59s.`,
      headers: {
        'retry-after': String(Math.ceil(resetMs / 1000)),
        'x-should-retry': 'false',
        'x-ratelimit-limit-tokens': '1000',
        'x-ratelimit-remaining-tokens': '0',
        'x-ratelimit-reset-tokens': '371h59m59s',
      },
      rule: 'tenant:acme',
    });
  });

  it('refuses when any one budget is exhausted, and then reserves in none of them', async () => {
    const store = new MemoryStore();
    const budgets = [budget({ tenant: 'acme', maxTokens: 10_000 }), budget({ group: 'ml-team', maxTokens: estimateFor(1) })];
    const stage = budgetStage(config(budgets), store);
    granted(await stage.run(ctx({ maxTokens: 1, admissionId: 'a' })));
    const d = denied(await stage.run(ctx({ maxTokens: 1, admissionId: 'b' })));
    expect(d.rule).to.equal('group:ml-team');
    expect((await store.readBudget('tb:tenant:acme:2026-11', T0)).reserved).to.equal(estimateFor(1));
  });

  it('resets at the calendar boundary: a budget spent in November has room on 1 December (Tokyo)', async () => {
    const store = new MemoryStore();
    const stage = budgetStage(config([budget({ tenant: 'acme', maxTokens: 100, timeZone: 'Asia/Tokyo' })]), store);
    const boundary = Date.UTC(2026, 10, 30, 15);
    const spent = granted(await stage.run(ctx({ now: boundary - 60_000, maxTokens: 500 })));
    await store.settle(spent.reservation?.budgets ?? [], spent.reservation?.id ?? '', 100, boundary - 30_000);
    const d = denied(await stage.run(ctx({ now: boundary - 1 })));
    expect(d.headers['retry-after']).to.equal('1');
    const next = granted(await stage.run(ctx({ now: boundary, maxTokens: 10 })));
    expect(next.reservation?.budgets[0]?.key).to.equal('tb:tenant:acme:2026-12');
    expect(next.responseHeaders?.['x-ratelimit-remaining-tokens']).to.equal(String(100 - estimateFor(10)));
  });

  describe('store failure', () => {
    const failing: Store = Object.assign(Object.create(new MemoryStore()) as Store, {
      admit: () => Promise.reject(new Error('ECONNREFUSED')),
    });
    const guarded = (onUnavailable: 'closed' | 'open' | 'local') =>
      new GuardedStore(failing, { timeoutMs: 50, onUnavailable });
    const cfg = config([budget({ tenant: 'acme', maxTokens: 1000 })]);

    it('closed: refuses with 503 store_unavailable', async () => {
      const d = denied(await budgetStage(cfg, guarded('closed')).run(ctx()));
      expect(d).to.include({ status: 503, reason: 'store_unavailable', code: 'service_unavailable' });
      expect(d.headers).to.deep.equal({ 'retry-after': '1' });
    });

    it('open: admits with nothing reserved and no headers, flagged in the metadata', async () => {
      const g = granted(await budgetStage(cfg, guarded('open')).run(ctx({ maxTokens: 5, admissionId: 'x' })));
      expect(g.responseHeaders).to.equal(undefined);
      expect(g.reservation?.reserved).to.deep.equal([0]);
      // Kept so the settlement still charges the real usage once the store answers again.
      expect(g.reservation?.budgets).to.have.length(1);
      expect(g.metadata).to.deep.equal({ budgets: 'tenant:acme', budgetDegraded: 'open' });
    });

    it('local: reserves in this replica’s counters and says so', async () => {
      const g = granted(await budgetStage(cfg, guarded('local')).run(ctx({ maxTokens: 5 })));
      expect(g.reservation?.reserved).to.deep.equal([estimateFor(5)]);
      expect(g.responseHeaders?.['x-ratelimit-remaining-tokens']).to.equal(String(1000 - estimateFor(5)));
      expect(g.metadata).to.deep.equal({ budgets: 'tenant:acme', budgetDegraded: 'local' });
    });

    it('an unguarded store that throws refuses too (never admits uncounted)', async () => {
      expect(denied(await budgetStage(cfg, failing).run(ctx())).reason).to.equal('store_unavailable');
    });
  });
});
