import { expect } from 'chai';
import type { TokenBudgetConfig } from '../../../src/config/schema.js';
import { estimateReservation } from '../../../src/metering/estimate.js';
import { periodWindow } from '../../../src/budgets/period.js';
import { admitter } from '../../helpers/unit.js';
import {
  applicableBudgets,
  budgetKey,
  BudgetPlanner,
  DEFAULT_RESERVATION_TTL_SECONDS,
} from '../../../src/budgets/planner.js';
import { GuardedStore } from '../../../src/store/guarded.js';
import { MemoryStore } from '../../../src/store/memory.js';
import type { AdmitRequest, AdmitResult, BudgetItem, Store } from '../../../src/store/store.js';
import { budget, config, ctx, denied, granted, identity, T0 } from './helpers.js';


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
function budgetStage(cfg: ConstructorParameters<typeof BudgetPlanner>[0], store: Store): ReturnType<typeof admitter> {
  return admitter([new BudgetPlanner(cfg)], store);
}

/** The estimate the stage reserves for the helpers' chat request. */
function estimateFor(maxTokens: number): number {
  const body = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: maxTokens };
  return estimateReservation('/v1/chat/completions', body, 'gpt-4o-mini', 100).total;
}

describe('budgets/applicable budgets', () => {
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

describe('budgets/keys and periods', () => {
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

describe('budgets/BudgetPlanner (through the admission stage)', () => {
  it('reserves prompt estimate + max_tokens in every applicable budget in one call, under the admission id', async () => {
    const { store, calls } = recording();
    const budgets = [budget({ tenant: 'acme', maxTokens: 10_000 }), budget({ user: 'ann@myorg.com', maxTokens: 5_000, period: 'day' })];
    const stage = budgetStage(config(budgets), store);
    const grant = granted(await stage.run(ctx({ maxTokens: 50, handoffId: 'adm-1' })));
    const amount = estimateFor(50);
    expect(calls).to.have.length(1);
    expect(calls[0]).to.deep.equal({
      id: 'adm-1',
      ttlMs: DEFAULT_RESERVATION_TTL_SECONDS * 1000,
      now: T0,
      items: [
        // Each key outlives its period by a day (late settlements and reads still find it).
        { key: 'tb:tenant:acme:2026-11', limit: 10_000, amount, minAmount: amount, expiresAtMs: Date.UTC(2026, 11, 2) },
        { key: 'tb:user:ann%40myorg.com:2026-11-15', limit: 5_000, amount, minAmount: amount, expiresAtMs: Date.UTC(2026, 10, 17) },
      ],
    });
    expect(grant.reservation).to.deep.equal({
      id: 'adm-1',
      budgets: [
        { key: 'tb:tenant:acme:2026-11', expiresAtMs: Date.UTC(2026, 11, 2) },
        { key: 'tb:user:ann%40myorg.com:2026-11-15', expiresAtMs: Date.UTC(2026, 10, 17) },
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
    // gpt-4o-mini at the built-in prices (USD per million tokens × 10⁶ = pico-dollars per token)
    expect(nobody).to.deep.equal({
      promptEstimate: estimateFor(7) - 7,
      price: { input: 150_000, cachedInput: 75_000, output: 600_000 },
    });
    expect(calls).to.have.length(0);
  });

  it('refuses with insufficient_quota once a budget is spent, until the period ends', async () => {
    const stage = budgetStage(config([budget({ tenant: 'acme', maxTokens: 1000 })], 4096), new MemoryStore());
    // 9 prompt tokens + 991 output: exactly the budget.
    const first = granted(await stage.run(ctx({ maxTokens: 991 })));
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
    granted(await stage.run(ctx({ maxTokens: 1, handoffId: 'a' })));
    const d = denied(await stage.run(ctx({ maxTokens: 1, handoffId: 'b' })));
    expect(d.rule).to.equal('group:ml-team');
    expect((await store.readBudget('tb:tenant:acme:2026-11', T0)).reserved).to.equal(estimateFor(1));
  });

  it('resets at the calendar boundary: a budget spent in November has room on 1 December (Tokyo)', async () => {
    const store = new MemoryStore();
    const stage = budgetStage(config([budget({ tenant: 'acme', maxTokens: 100, timeZone: 'Asia/Tokyo' })]), store);
    const boundary = Date.UTC(2026, 10, 30, 15);
    const spent = granted(await stage.run(ctx({ now: boundary - 60_000, maxTokens: 91 })));
    await store.settle(spent.reservation?.budgets ?? [], spent.reservation?.id ?? '', [100], boundary - 30_000);
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
      const g = granted(await budgetStage(cfg, guarded('open')).run(ctx({ maxTokens: 5, handoffId: 'x' })));
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

describe('budgets/fitToBudget: no single request overshoots a budget', () => {
  const HI = [{ role: 'user', content: 'hi' }]; // 9 prompt tokens at admission
  const chat = (extra: Record<string, unknown>) => ({ model: 'gpt-4o-mini', messages: HI, ...extra });
  const TENANT = 'tb:tenant:acme:2026-11';
  /** A stage over one fresh store, after `used` tokens of the tenant's budget were spent. */
  async function stageWith(budgets: TokenBudgetConfig[], fit: 'refuse' | 'cap' | undefined, used = 0) {
    const store = new MemoryStore();
    if (used > 0) {
      const b = { key: TENANT, expiresAtMs: Date.UTC(2026, 11, 1) };
      await store.admit({ windows: [], budgets: [{ ...b, limit: 1e9, amount: 0, minAmount: 0 }], reservationId: 'x', ttlMs: 1 }, T0);
      await store.settle([b], 'x', [used], T0);
    }
    return { store, stage: budgetStage(config(budgets, 100, fit), store) };
  }
  const acme = (maxTokens: number) => budget({ tenant: 'acme', maxTokens });

  describe('refuse (the default)', () => {
    it('refuses n: 5 without max_tokens when its worst case does not fit, reserving nothing', async () => {
      const { store, stage } = await stageWith([acme(1000)], undefined, 600);
      const d = denied(await stage.run(ctx({ body: chat({ n: 5 }) })));
      // 9 + 5 × 100 (defaultMaxOutputTokens) = 509 > 400 left
      expect(d).to.include({ status: 429, reason: 'budget_exhausted', code: 'insufficient_quota', rule: 'tenant:acme' });
      expect(d.message).to.equal(
        "This request's worst case of 509 tokens does not fit the 400 left in your token budget tenant:acme " +
          'for this month (1000 tokens). Ask for fewer output tokens or choices (n); the budget resets in 372h0m0s.',
      );
      expect(d.headers).to.deep.equal({
        'retry-after': String((Date.UTC(2026, 11, 1) - T0) / 1000),
        'x-should-retry': 'false',
        'x-ratelimit-limit-tokens': '1000',
        'x-ratelimit-remaining-tokens': '400',
        'x-ratelimit-reset-tokens': '372h0m0s',
      });
      expect(await store.readBudget(TENANT, T0)).to.deep.equal({ used: 600, reserved: 0 });
      // A small request still fits, and its own limit needs no rewriting.
      const small = granted(await stage.run(ctx({ maxTokens: 10 })));
      expect(small.reservation?.reserved).to.deep.equal([19]);
      expect(small).not.to.have.property('outputLimit');
    });

    it('writes the default limit into a request that names none, so the reservation is a bound', async () => {
      const { stage } = await stageWith([acme(1000)], 'refuse');
      const g = granted(await stage.run(ctx({ body: chat({ n: 2 }) })));
      expect(g.reservation?.reserved).to.deep.equal([9 + 2 * 100]);
      expect(g.outputLimit).to.equal(100);
    });

    it('counts best_of for completions and the default for responses, in every budget', async () => {
      const { stage } = await stageWith([acme(10_000), budget({ user: 'ann@myorg.com', maxTokens: 300 })], 'refuse');
      // 1 prompt token + max(2, 4) × 80 = 321 > 300 in the user's budget
      const completions = { model: 'gpt-3.5-turbo-instruct', prompt: 'x', n: 2, best_of: 4, max_tokens: 80 };
      const d = denied(await stage.run(ctx({ path: '/v1/completions', body: completions })));
      expect(d.rule).to.equal('user:ann@myorg.com');
      expect(d.message).to.contain('worst case of 321 tokens does not fit the 300 left');
      const fits = granted(await stage.run(ctx({ path: '/v1/completions', body: { ...completions, max_tokens: 74 } })));
      expect(fits.reservation?.reserved).to.deep.equal([297, 297]);
      expect(fits).not.to.have.property('outputLimit');
      // Responses API without max_output_tokens: 9 + 100, the default written.
      const fresh = (await stageWith([acme(10_000), budget({ user: 'ann@myorg.com', maxTokens: 300 })], 'refuse')).stage;
      const responses = granted(await fresh.run(ctx({ path: '/v1/responses', body: { model: 'gpt-4o', input: 'x' } })));
      expect(responses.outputLimit).to.equal(100);
      expect(responses.reservation?.reserved).to.deep.equal([109, 109]);
    });

    it('needs no limit for embeddings, which produce no output', async () => {
      const { stage } = await stageWith([acme(1000)], 'refuse');
      const g = granted(await stage.run(ctx({ path: '/v1/embeddings', body: { model: 'text-embedding-3-small', input: 'abc' } })));
      expect(g.reservation?.reserved).to.deep.equal([1]);
      expect(g).not.to.have.property('outputLimit');
    });

    it('open store policy: nothing reserved, and only a missing limit is written', async () => {
      const failing: Store = Object.assign(Object.create(new MemoryStore()) as Store, {
        admit: () => Promise.reject(new Error('ECONNREFUSED')),
      });
      const open = budgetStage(config([acme(10)], 100), new GuardedStore(failing, { timeoutMs: 50, onUnavailable: 'open' }));
      expect(granted(await open.run(ctx({ body: chat({ n: 3 }) }))).outputLimit).to.equal(100);
      expect(granted(await open.run(ctx({ maxTokens: 500 })))).not.to.have.property('outputLimit');
    });
  });

  describe('cap', () => {
    it('admits n: 5 without max_tokens and lowers its limit until 5 choices fit the room', async () => {
      const { store, stage } = await stageWith([acme(1000)], 'cap', 600);
      const g = granted(await stage.run(ctx({ body: chat({ n: 5 }) })));
      expect(g.reservation?.reserved).to.deep.equal([400]);
      expect(g.outputLimit).to.equal(Math.floor((400 - 9) / 5)); // 78
      expect(g.responseHeaders?.['x-ratelimit-remaining-tokens']).to.equal('0');
      expect(await store.readBudget(TENANT, T0)).to.deep.equal({ used: 600, reserved: 400 });
    });

    it('caps to the smallest room over every budget, never above the request’s own limit', async () => {
      const { stage } = await stageWith([acme(10_000), budget({ user: 'ann@myorg.com', maxTokens: 200 })], 'cap');
      const g = granted(await stage.run(ctx({ body: chat({ n: 5, max_completion_tokens: 1000 }) })));
      expect(g.reservation?.reserved).to.deep.equal([5009, 200]);
      expect(g.outputLimit).to.equal(Math.floor((200 - 9) / 5)); // 38
      // When the request's own limit fits, nothing is written.
      const fresh = (await stageWith([acme(10_000), budget({ user: 'ann@myorg.com', maxTokens: 200 })], 'cap')).stage;
      const fits = granted(await fresh.run(ctx({ body: chat({ n: 2, max_tokens: 5 }) })));
      expect(fits).not.to.have.property('outputLimit');
    });

    it('caps completions per candidate (best_of) and the Responses API’s max_output_tokens', async () => {
      const { stage } = await stageWith([acme(500)], 'cap');
      const completions = { model: 'gpt-3.5-turbo-instruct', prompt: 'x', best_of: 4, max_tokens: 300 };
      const c = granted(await stage.run(ctx({ path: '/v1/completions', body: completions, handoffId: 'c' })));
      expect(c.reservation?.reserved).to.deep.equal([500]);
      expect(c.outputLimit).to.equal(Math.floor((500 - 1) / 4)); // 124
      const { stage: other } = await stageWith([acme(300)], 'cap');
      const r = granted(await other.run(ctx({ path: '/v1/responses', body: { model: 'gpt-4o', input: 'x', max_output_tokens: 4000 } })));
      expect(r.reservation?.reserved).to.deep.equal([300]);
      expect(r.outputLimit).to.equal(300 - 9);
    });

    it('refuses when not even 16 output tokens per choice (or the request’s smaller limit) fit', async () => {
      const { stage } = await stageWith([acme(1000)], 'cap', 912); // 88 left
      const d = denied(await stage.run(ctx({ body: chat({ n: 5 }) })));
      expect(d.message).to.equal(
        'This request needs at least 89 tokens (its prompt and 16 output tokens per choice), which does not fit ' +
          'the 88 left in your token budget tenant:acme for this month (1000 tokens). It resets in 372h0m0s.',
      );
      expect(d.headers['x-ratelimit-remaining-tokens']).to.equal('88');
      // 9 + 5 × 15 = 84 fits whole: the request's own smaller limit is the minimum.
      const small = granted(await stage.run(ctx({ body: chat({ n: 5, max_tokens: 15 }) })));
      expect(small.reservation?.reserved).to.deep.equal([84]);
      expect(small).not.to.have.property('outputLimit');
    });
  });
});
