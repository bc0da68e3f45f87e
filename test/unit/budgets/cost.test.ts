import { expect } from 'chai';
import { BudgetLedger } from '../../../src/budgets/ledger.js';
import { BudgetPlanner } from '../../../src/budgets/planner.js';
import type { Config, TokenBudgetConfig } from '../../../src/config/schema.js';
import { decodeHandoff, encodeHandoff, type Handoff } from '../../../src/handoff/handoff.js';
import { estimateReservation } from '../../../src/metering/estimate.js';
import { outputTokensWithin } from '../../../src/metering/pricing.js';
import type { Usage } from '../../../src/metering/usage.js';
import { MemoryStore } from '../../../src/store/memory.js';
import type { AdmitRequest, BudgetItem, Store } from '../../../src/store/store.js';
import { admitter } from '../../helpers/unit.js';
import { budget, config, ctx, denied, granted, identity, logSink, T0 } from './helpers.js';

/** gpt-4o-mini at the built-in prices, pico-dollars per token. */
const MINI = { input: 150_000, cachedInput: 75_000, output: 600_000 };
const TOKENS = 'tb:tenant:acme:2026-11';
const COST = 'tc:tenant:acme:2026-11';


function withPricing(budgets: TokenBudgetConfig[], pricing?: Config['pricing'], fit?: 'cap'): Config {
  return { ...config(budgets, 100, fit), ...(pricing !== undefined ? { pricing } : {}) };
}

/** Records the budget items of every admit call. */
function recording(inner: Store = new MemoryStore()) {
  const items: BudgetItem[][] = [];
  const store: Store = Object.assign(Object.create(inner) as Store, {
    admit(request: AdmitRequest, now: number) {
      items.push([...request.budgets]);
      return inner.admit(request, now);
    },
  });
  return { store, items };
}

/** The prompt estimate of the helpers' chat request. */
const PROMPT = estimateReservation('/v1/chat/completions', ctx().body, 'gpt-4o-mini', 100).prompt;
/** Worst case of the helpers' request with `maxTokens`, in micro-dollars, rounded up. */
const worst = (maxTokens: number) => Math.ceil((PROMPT * MINI.input + maxTokens * MINI.output) / 1_000_000);

describe('budgets/cost budgets (maxCost)', () => {
  it('reserves the worst case in micro-dollars beside the tokens, one store call, both in the hand-off', async () => {
    const { store, items } = recording();
    const cfg = withPricing([budget({ tenant: 'acme', maxTokens: 100_000, maxCostMicros: 5_000_000 })]);
    const g = granted(await admitter([new BudgetPlanner(cfg)], store).run(ctx({ maxTokens: 1000, handoffId: 'h1' })));
    expect(items).to.have.length(1);
    expect(items[0]?.map((i) => [i.key, i.limit, i.amount])).to.deep.equal([
      [TOKENS, 100_000, PROMPT + 1000],
      [COST, 5_000_000, worst(1000)],
    ]);
    expect(g.price).to.deep.equal(MINI);
    expect(g.reservation?.units).to.deep.equal(['tokens', 'usd']);
    expect(g.reservation?.reserved).to.deep.equal([PROMPT + 1000, worst(1000)]);
    // The x-ratelimit-*-tokens headers still speak tokens only.
    expect(g.responseHeaders?.['x-ratelimit-limit-tokens']).to.equal('100000');
    expect(g.metadata?.['budgets']).to.equal('tenant:acme');

    const handoff: Handoff = {
      id: 'h1', requestId: 'r', identity: identity(), method: 'POST', path: '/v1/chat/completions',
      model: 'gpt-4o-mini', promptEstimate: PROMPT, injectUsage: false, admittedAt: T0,
      ...(g.reservation !== undefined ? { reservation: g.reservation } : {}),
      ...(g.price !== undefined ? { price: g.price } : {}),
    };
    const back = decodeHandoff(JSON.parse(JSON.stringify(encodeHandoff(handoff, ''))) as Record<string, unknown>);
    expect(back?.reservation).to.deep.equal(g.reservation);
    expect(back?.price).to.deep.equal(MINI);
  });

  it('refuses a request whose priced worst case does not fit, naming the dollars', async () => {
    const store = new MemoryStore();
    const cfg = withPricing([budget({ tenant: 'acme', maxCostMicros: worst(1000) - 1 })]);
    const run = admitter([new BudgetPlanner(cfg)], store);
    const d = denied(await run.run(ctx({ maxTokens: 1000 })));
    expect(d.reason).to.equal('budget_exhausted');
    expect(d.message).to.match(/^This request's worst case of \$0\.\d+ does not fit the \$0\.\d+ left in your cost budget tenant:acme for this month \(\$0\.\d+\)/);
    expect(d.headers).to.not.have.property('x-ratelimit-limit-tokens');
    expect(d.headers['x-should-retry']).to.equal('false');
    // A smaller request fits.
    granted(await run.run(ctx({ maxTokens: 900 })));
  });

  it('caps the output to what the dollars left buy (fitToBudget: cap)', async () => {
    const store = new MemoryStore();
    const cfg = withPricing([budget({ tenant: 'acme', maxCostMicros: 100 })], undefined, 'cap');
    const g = granted(await admitter([new BudgetPlanner(cfg)], store).run(ctx({ maxTokens: 1000 })));
    expect(g.reservation?.reserved).to.deep.equal([100]);
    expect(g.outputLimit).to.equal(outputTokensWithin(MINI, PROMPT, 100));
    expect(g.outputLimit).to.be.within(16, 999);
  });

  it('refuses a model without a price before counting anything: 403 model_not_priced', async () => {
    const { store, items } = recording();
    const cfg = withPricing([budget({ tenant: 'acme', maxTokens: 1000, maxCostMicros: 1_000_000 })]);
    const d = denied(await admitter([new BudgetPlanner(cfg)], store).run({ ...ctx(), model: 'llama-3-70b' }));
    expect([d.status, d.reason, d.code, d.type]).to.deep.equal([403, 'model_not_priced', 'model_not_priced', 'permission_denied']);
    expect(d.message).to.contain('"llama-3-70b" has no price').and.contain('cost budget tenant:acme');
    expect(items).to.have.length(0);
    // A token-only budget does not need a price; a fallback prices the unknown model.
    const tokensOnly = withPricing([budget({ tenant: 'acme', maxTokens: 1000 })]);
    expect(granted(await admitter([new BudgetPlanner(tokensOnly)], store).run({ ...ctx(), model: 'llama-3-70b' })).price).to.equal(undefined);
    const fallback = withPricing([budget({ tenant: 'acme', maxCostMicros: 1_000_000 })], {
      models: [], builtin: true, unknownModel: { input: 1_000_000, output: 2_000_000 },
    });
    const g = granted(await admitter([new BudgetPlanner(fallback)], store).run({ ...ctx(), model: 'llama-3-70b' }));
    expect(g.price).to.deep.equal({ input: 1_000_000, output: 2_000_000 });
  });

  describe('settlement', () => {
    const cfg = withPricing([budget({ tenant: 'acme', maxTokens: 100_000, maxCostMicros: 5_000_000 })]);

    async function settled(usage: Usage, aborted = false) {
      const store = new MemoryStore();
      const g = granted(await admitter([new BudgetPlanner(cfg)], store).run(ctx({ maxTokens: 500, handoffId: 'h1' })));
      const sink = logSink();
      const ledger = new BudgetLedger(cfg, store, { logger: sink.logger, now: () => T0 + 1000 });
      await ledger.settle(
        {
          id: 'h1', requestId: 'r', identity: identity(), method: 'POST', path: '/v1/chat/completions',
          model: 'gpt-4o-mini', promptEstimate: PROMPT, injectUsage: false, admittedAt: T0,
          ...(g.reservation !== undefined ? { reservation: g.reservation } : {}),
          ...(g.price !== undefined ? { price: g.price } : {}),
        },
        usage,
        { status: 200, latencyMs: 5, aborted },
      );
      const line = sink.lines.find((l) => l['audit'] === 'usage');
      return { store, line };
    }

    it('charges tokens and the usage priced with its cached and reasoning details, exactly, in one call', async () => {
      // 150 uncached input × 0.15 + 50 cached × 0.075 + 100 output × 0.60 (reasoning billed as
      // output) = 86.25 micro-dollars, rounded up once: 87.
      const usage: Usage = { inputTokens: 200, outputTokens: 100, totalTokens: 300, cachedInputTokens: 50, reasoningTokens: 20, source: 'provider' };
      const { store, line } = await settled(usage);
      expect(await store.readBudget(TOKENS, T0 + 1000)).to.deep.equal({ used: 300, reserved: 0 });
      expect(await store.readBudget(COST, T0 + 1000)).to.deep.equal({ used: 87, reserved: 0 });
      expect(line).to.include({ charged: 300, cost: '0.000087', chargedCost: '0.000087', source: 'provider' });
      expect(line?.['remaining']).to.deep.equal({ 'tenant:acme': 99_700 });
      expect(line?.['remainingCost']).to.deep.equal({ 'tenant:acme': '4.999913' });
      expect(line?.['budgets']).to.deep.equal(['tenant:acme']);
    });

    it('prices an estimate (aborted stream) the same way and marks it estimated', async () => {
      const usage: Usage = { inputTokens: 40, outputTokens: 10, totalTokens: 50, source: 'estimated' };
      const { store, line } = await settled(usage, true);
      // 40 × 0.15 + 10 × 0.60 = 12 micro-dollars.
      expect(await store.readBudget(COST, T0 + 1000)).to.deep.equal({ used: 12, reserved: 0 });
      expect(line).to.include({ cost: '0.000012', chargedCost: '0.000012', source: 'estimated', aborted: true });
    });
  });
});
