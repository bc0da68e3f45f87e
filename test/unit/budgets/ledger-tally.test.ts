/** The ledger writes each settled request to its day in the usage book (the portal's charts). */
import { expect } from 'chai';
import type { Handoff } from '../../../src/handoff/handoff.js';
import { BudgetLedger } from '../../../src/budgets/ledger.js';
import { MemoryStore } from '../../../src/store/memory.js';
import { MemoryUsageBook, type UsageBook } from '../../../src/store/usage-book.js';
import { identity, logSink, T0 } from './helpers.js';

const handoff: Handoff = {
  id: 'adm-9',
  requestId: 'req-9',
  identity: identity(),
  method: 'POST',
  path: '/v1/chat/completions',
  model: 'gpt-4o-mini',
  injectUsage: false,
  promptEstimate: 10,
  price: { input: 150_000, output: 600_000 },
  admittedAt: T0,
};

function ledger(book: UsageBook, keepDays = 62, timeZone = 'UTC') {
  const sink = logSink();
  const l = new BudgetLedger({ tokenBudgets: [] }, new MemoryStore(), {
    logger: sink.logger,
    now: () => T0 + 1000,
    usage: { book, days: { keepDays, timeZone } },
  });
  return { ledger: l, ...sink };
}

describe('budgets/BudgetLedger: daily usage tallies', () => {
  it('tallies provider usage and estimates on the day of the settlement, with the cost', async () => {
    const book = new MemoryUsageBook(() => T0);
    const { ledger: l } = ledger(book);
    await l.settle(handoff, { inputTokens: 200, outputTokens: 100, totalTokens: 300, source: 'provider' }, { status: 200, latencyMs: 5, aborted: false });
    await l.settle(handoff, { inputTokens: 50, outputTokens: 10, totalTokens: 60, source: 'estimated' }, { status: 200, latencyMs: 5, aborted: true });
    expect(await book.readDay('2026-11-15', 'acme', 'ann@myorg.com')).to.deep.equal([
      // cost: 200 × 0.15 $/M + 100 × 0.60 $/M = 90 µ$, then 50 × 0.15 + 10 × 0.60 = 13.5 → 14 µ$ (rounded up)
      { user: 'ann@myorg.com', model: 'gpt-4o-mini', requests: 2, inputTokens: 250, outputTokens: 110, estimatedTokens: 60, costMicros: 104 },
    ]);
  });

  it('names the day on the configured zone', async () => {
    const book = new MemoryUsageBook(() => T0);
    // 12:00:01 UTC is already the next day in Pacific/Kiritimati (UTC+14).
    await ledger(book, 62, 'Pacific/Kiritimati').ledger.settle(handoff, { inputTokens: 1, outputTokens: 1, totalTokens: 2, source: 'provider' }, { status: 200, latencyMs: 1, aborted: false });
    expect(await book.tenants('2026-11-16')).to.deep.equal(['acme']);
  });

  it('tallies nothing for a release, or with keepDays 0', async () => {
    const book = new MemoryUsageBook(() => T0);
    await ledger(book).ledger.release(handoff, 'upstream_status_503');
    await ledger(book, 0).ledger.settle(handoff, { inputTokens: 1, outputTokens: 1, totalTokens: 2, source: 'provider' }, { status: 200, latencyMs: 1, aborted: false });
    expect(await book.tenants('2026-11-15')).to.deep.equal([]);
  });

  it('still writes the usage line when the book fails, and says the tally was dropped', async () => {
    const broken: UsageBook = {
      tally: () => Promise.reject(new Error('Redis is away')),
      readDay: () => Promise.resolve([]),
      tenants: () => Promise.resolve([]),
    };
    const { ledger: l, lines } = ledger(broken);
    await l.settle(handoff, { inputTokens: 1, outputTokens: 1, totalTokens: 2, source: 'provider' }, { status: 200, latencyMs: 1, aborted: false });
    expect(lines.filter((x) => x['audit'] === 'usage')).to.have.length(1);
    const warn = lines.find((x) => x['msg'] === 'daily usage tally not written (the usage line has the numbers)');
    expect(warn).to.include({ requestId: 'req-9', reason: 'Redis is away' });
  });
});
