import { expect } from 'chai';
import { periodWindow } from '../../../src/budgets/period.js';
import { BudgetPlanner } from '../../../src/budgets/planner.js';
import { estimateReservation } from '../../../src/metering/estimate.js';
import { MemoryStore } from '../../../src/store/memory.js';
import { admitter } from '../../helpers/unit.js';
import { budget, config, ctx, denied, granted, T0 } from './helpers.js';

const total = (maxTokens: number) =>
  estimateReservation('/v1/chat/completions', ctx({ maxTokens }).body, 'gpt-4o-mini', 100).total;

describe('budgets/tokens per minute (period: minute)', () => {
  it('names calendar minutes on the zone’s wall clock', () => {
    const w = periodWindow('minute', 'Asia/Kolkata', T0 + 61_500);
    expect(w).to.deep.equal({ id: '2026-11-15T17:31', startMs: T0 + 60_000, endMs: T0 + 120_000 });
  });

  it('refuses within the minute with 429 rate_limit_exceeded of type tokens, and admits again in the next', async () => {
    const store = new MemoryStore();
    const limit = 3 * total(100);
    const run = admitter([new BudgetPlanner(config([budget({ user: 'ann@myorg.com', maxTokens: limit, period: 'minute' })]))], store);
    const now = T0 + 45_000; // 15 s before the minute ends
    for (let i = 0; i < 3; i++) {
      const g = granted(await run.run(ctx({ maxTokens: 100, now, handoffId: `h${i}` })));
      expect(g.reservation?.budgets[0]).to.deep.equal({ key: 'tb:user:ann%40myorg.com:2026-11-15T12:00', expiresAtMs: T0 + 120_000 });
      expect(g.responseHeaders?.['x-ratelimit-reset-tokens']).to.equal('15s');
    }
    const d = denied(await run.run(ctx({ maxTokens: 100, now, handoffId: 'h3' })));
    expect([d.status, d.reason, d.type, d.code]).to.deep.equal([429, 'token_rate_limited', 'tokens', 'rate_limit_exceeded']);
    expect(d.message).to.equal(`You exceeded your token rate limit user:ann@myorg.com (${limit} tokens per minute). It resets in 15s.`);
    expect(d.headers).to.include({ 'retry-after': '15', 'x-ratelimit-limit-tokens': String(limit), 'x-ratelimit-remaining-tokens': '0' });
    // The SDKs retry a 429 after retry-after: right for a minute.
    expect(d.headers).to.not.have.property('x-should-retry');
    granted(await run.run(ctx({ maxTokens: 100, now: T0 + 60_000, handoffId: 'h4' })));
  });

  it('tells the SDK not to retry a request larger than the whole limit', async () => {
    const run = admitter([new BudgetPlanner(config([budget({ tenant: 'acme', maxTokens: 50, period: 'minute' })]))], new MemoryStore());
    const d = denied(await run.run(ctx({ maxTokens: 100, now: T0 })));
    expect(d.reason).to.equal('token_rate_limited');
    expect(d.message).to.match(/does not fit the 50 left in your token rate limit tenant:acme \(50 tokens per minute\)\. Ask for fewer output tokens; it resets in 1m0s\.$/);
    expect(d.headers['x-should-retry']).to.equal('false');
  });

  it('a subject may have a budget and, besides it, a tokens-per-minute limit: both are charged, the minute refuses first', async () => {
    const store = new MemoryStore();
    const limit = 2 * total(100);
    const run = admitter(
      [
        new BudgetPlanner(
          config([budget({ tenant: 'acme', maxTokens: 1_000_000 }), budget({ tenant: 'acme', maxTokens: limit, period: 'minute' })]),
        ),
      ],
      store,
    );
    const now = T0 + 45_000;
    for (let i = 0; i < 2; i++) {
      const g = granted(await run.run(ctx({ maxTokens: 100, now, handoffId: `h${i}` })));
      expect(g.reservation?.budgets.map((b) => b.key)).to.deep.equal(['tb:tenant:acme:2026-11', 'tb:tenant:acme:2026-11-15T12:00']);
      expect(g.reservation?.names).to.deep.equal(['tenant:acme', 'tenant:acme/minute']);
    }
    const d = denied(await run.run(ctx({ maxTokens: 100, now, handoffId: 'h2' })));
    expect([d.status, d.reason, d.rule]).to.deep.equal([429, 'token_rate_limited', 'tenant:acme/minute']);
    expect(d.message).to.equal(`You exceeded your token rate limit tenant:acme (${limit} tokens per minute). It resets in 15s.`);
  });
});
