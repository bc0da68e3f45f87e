import { expect } from 'chai';
import type { Handoff } from '../../../src/handoff/handoff.js';
import { BudgetLedger } from '../../../src/budgets/ledger.js';
import type { Usage } from '../../../src/metering/usage.js';
import { admitter } from '../../helpers/unit.js';
import { BudgetPlanner } from '../../../src/budgets/planner.js';
import { GuardedStore } from '../../../src/store/guarded.js';
import { MemoryStore } from '../../../src/store/memory.js';
import type { Store } from '../../../src/store/store.js';
import type { UsageMetrics } from '../../../src/telemetry/metrics.js';
import { budget, config, ctx, identity, logSink, T0 } from './helpers.js';

const SECRET_PROMPT = 'the launch code is 0000';
const KEY = 'tb:tenant:acme:2026-11';

/** An admission as the Gateway puts it, with a reservation made by the real stage. */
async function admitted(store: Store, maxTokens = 100): Promise<Handoff> {
  const cfg = config([budget({ tenant: 'acme', maxTokens: 1000 })]);
  const c = ctx({ maxTokens, handoffId: 'adm-1', cfg });
  const result = await admitter([new BudgetPlanner(cfg)], store).run(c);
  if (!('ok' in result) || result.ok.reservation === undefined) throw new Error('not reserved');
  return {
    id: 'adm-1',
    requestId: 'req-1',
    identity: identity({ claims: { secret: SECRET_PROMPT } }),
    method: 'POST',
    path: '/v1/chat/completions',
    model: 'gpt-4o-mini',
    injectUsage: false,
    promptEstimate: result.ok.promptEstimate ?? 0,
    reservation: result.ok.reservation,
    admittedAt: T0,
  };
}

const usage: Usage = {
  inputTokens: 200,
  outputTokens: 100,
  totalTokens: 300,
  cachedInputTokens: 50,
  reasoningTokens: 20,
  source: 'provider',
};

function ledgerWith(store: Store, metrics?: UsageMetrics) {
  const sink = logSink();
  const cfg = config([budget({ tenant: 'acme', maxTokens: 1000 })]);
  const ledger = new BudgetLedger(cfg, store, { logger: sink.logger, now: () => T0 + 5000, ...(metrics ? { metrics } : {}) });
  return { ledger, ...sink };
}

describe('budgets/BudgetLedger', () => {
  it('settles the reservation to the real usage and writes one audit line, without the prompt', async () => {
    const store = new MemoryStore();
    const admission = await admitted(store);
    expect((await store.readBudget(KEY, T0)).reserved).to.be.greaterThan(100);
    const { ledger, lines, raw } = ledgerWith(store);
    await ledger.settle(admission, usage, { status: 200, latencyMs: 123.4567, aborted: false });

    expect(await store.readBudget(KEY, T0 + 5000)).to.deep.equal({ used: 300, reserved: 0 });
    expect(lines).to.have.length(1);
    const line = { ...lines[0] };
    for (const volatile of ['time', 'pid', 'hostname']) delete line[volatile];
    expect(line).to.deep.equal({
      level: 'info',
      service: 'tollgate',
      audit: 'usage',
      requestId: 'req-1',
      admission: 'adm-1',
      subject: 'sub-1',
      user: 'ann@myorg.com',
      tenant: 'acme',
      groups: ['eng', 'ml-team'],
      model: 'gpt-4o-mini',
      path: '/v1/chat/completions',
      inputTokens: 200,
      outputTokens: 100,
      totalTokens: 300,
      cachedInputTokens: 50,
      reasoningTokens: 20,
      source: 'provider',
      charged: 300,
      status: 200,
      aborted: false,
      latencyMs: 123.457,
      budgets: ['tenant:acme'],
      settled: true,
      remaining: { 'tenant:acme': 700 },
      msg: 'usage settled',
    });
    expect(raw.join('\n')).not.to.include(SECRET_PROMPT);
  });

  it('writes the line for a request without budgets too, charging nothing', async () => {
    const admission: Handoff = { ...(await admitted(new MemoryStore())), reservation: undefined };
    const { ledger, lines } = ledgerWith(new MemoryStore());
    await ledger.settle(admission, { ...usage, source: 'estimated' }, { status: 200, latencyMs: 1, aborted: true });
    expect(lines[0]).to.include({ audit: 'usage', charged: 0, settled: true, source: 'estimated', aborted: true, totalTokens: 300 });
    expect(lines[0]?.['budgets']).to.deep.equal([]);
  });

  it('never throws when the store fails: the full line is logged with settled: false and the keys to replay', async () => {
    const store = new MemoryStore();
    const admission = await admitted(store);
    const broken: Store = Object.assign(Object.create(store) as Store, {
      settle: () => Promise.reject(new Error('READONLY You can’t write against a read only replica')),
    });
    const { ledger, lines } = ledgerWith(broken);
    await ledger.settle(admission, usage, { status: 200, latencyMs: 10, aborted: false });
    expect(lines).to.have.length(1);
    expect(lines[0]).to.include({ level: 'error', audit: 'usage', totalTokens: 300, charged: 300, settled: false });
    expect(lines[0]?.['budgetKeys']).to.deep.equal([KEY]);
    expect(lines[0]?.['error']).to.match(/READONLY/);
  });

  it('marks a settlement answered by the open policy as not settled (nothing was counted)', async () => {
    const store = new MemoryStore();
    const admission = await admitted(store);
    const down: Store = Object.assign(Object.create(store) as Store, { settle: () => Promise.reject(new Error('down')) });
    const { ledger, lines } = ledgerWith(new GuardedStore(down, { timeoutMs: 50, onUnavailable: 'open' }));
    await ledger.settle(admission, usage, { status: 200, latencyMs: 10, aborted: false });
    expect(lines[0]).to.include({ settled: false, degraded: 'open', level: 'error' });
  });

  it('releases a reservation without charging and says why', async () => {
    const store = new MemoryStore();
    const admission = await admitted(store);
    const { ledger, lines } = ledgerWith(store);
    await ledger.release(admission, 'upstream_status_503');
    expect(await store.readBudget(KEY, T0 + 5000)).to.deep.equal({ used: 0, reserved: 0 });
    expect(lines).to.have.length(1);
    expect(lines[0]).to.include({
      audit: 'usage',
      admission: 'adm-1',
      charged: 0,
      totalTokens: 0,
      reason: 'upstream_status_503',
      settled: true,
      latencyMs: 5000,
      msg: 'usage released',
    });
  });

  it('a failing release is logged, never thrown (the reservation expires on its own)', async () => {
    const store = new MemoryStore();
    const admission = await admitted(store);
    const broken: Store = Object.assign(Object.create(store) as Store, { release: () => Promise.reject(new Error('down')) });
    const { ledger, lines } = ledgerWith(broken);
    await ledger.release(admission, 'not_forwarded');
    expect(lines[0]).to.include({ charged: 0, settled: false, reason: 'not_forwarded' });
  });

  it('reports usage, the budget level and the closed reservation to metrics', async () => {
    const calls: unknown[][] = [];
    const metrics: UsageMetrics = {
      recordUsage: (u) => calls.push(['usage', u]),
      recordBudget: (name, used, limit) => calls.push(['budget', name, used, limit]),
      reservationClosed: (r) => calls.push(['closed', r.names]),
    };
    const store = new MemoryStore();
    const { ledger } = ledgerWith(store, metrics);
    await ledger.settle(await admitted(store), usage, { status: 200, latencyMs: 1, aborted: false });
    expect(calls).to.deep.equal([
      ['closed', ['tenant:acme']],
      ['budget', 'tenant:acme', 300, 1000],
      [
        'usage',
        {
          operation: 'chat',
          model: 'gpt-4o-mini',
          tenant: 'acme',
          user: identity({}).user,
          source: 'provider',
          inputTokens: 200,
          outputTokens: 100,
        },
      ],
    ]);
  });
});
