import { expect } from 'chai';
import { cumulative, dayIds, monthToDate, tenantReport, tenantsWithUsage, userDays } from '../../../src/budgets/usage-report.js';
import { MemoryUsageBook, type UsageTally } from '../../../src/store/usage-book.js';

const NOW = Date.UTC(2026, 11, 4, 12);

function t(day: string, user: string, model: string, input: number, over: Partial<UsageTally> = {}): UsageTally {
  return { day, tenant: 'acme', user, model, inputTokens: input, outputTokens: 0, estimatedTokens: 0, costMicros: 0, expiresAtMs: NOW + 1e10, ...over };
}

describe('budgets/usage-report', () => {
  it('lists the days of a range on a zone, across a daylight-saving change', () => {
    expect(monthToDate(NOW, 'UTC').days).to.deep.equal(['2026-12-01', '2026-12-02', '2026-12-03', '2026-12-04']);
    expect(monthToDate(NOW, 'UTC').month.id).to.equal('2026-12');
    // Berlin leaves summer time on 2026-10-25: that day has 25 hours and is listed once.
    const start = Date.UTC(2026, 9, 23, 22); // 2026-10-24 00:00 in Berlin
    // Three times 24 hours later it is 23:00 on the 26th there, one hour more is the 27th.
    expect(dayIds(start, start + 3 * 86_400_000, 'Europe/Berlin')).to.deep.equal(['2026-10-24', '2026-10-25', '2026-10-26']);
    expect(dayIds(start, start + 3 * 86_400_000 + 3_600_000, 'Europe/Berlin')).to.deep.equal(['2026-10-24', '2026-10-25', '2026-10-26', '2026-10-27']);
  });

  it("sums a user's days, zeros where there was nothing", async () => {
    const book = new MemoryUsageBook(() => NOW);
    await book.tally(t('2026-12-01', 'ada', 'gpt-4o', 10, { outputTokens: 5 }));
    await book.tally(t('2026-12-01', 'ada', 'gpt-4o-mini', 1));
    await book.tally(t('2026-12-03', 'ada', 'gpt-4o', 7, { estimatedTokens: 7, costMicros: 3 }));
    await book.tally(t('2026-12-03', 'bob', 'gpt-4o', 1000));
    const days = await userDays(book, 'acme', 'ada', ['2026-12-01', '2026-12-02', '2026-12-03']);
    expect(days.map((d) => [d.day, d.requests, d.tokens, d.estimatedTokens, d.costMicros])).to.deep.equal([
      ['2026-12-01', 2, 16, 0, 0],
      ['2026-12-02', 0, 0, 0, 0],
      ['2026-12-03', 1, 7, 7, 3],
    ]);
  });

  it("ranks a tenant's users and models by tokens and totals the period", async () => {
    const book = new MemoryUsageBook(() => NOW);
    await book.tally(t('2026-12-01', 'ada', 'gpt-4o', 10));
    await book.tally(t('2026-12-02', 'bob', 'gpt-4o-mini', 500));
    await book.tally(t('2026-12-02', 'cy', 'gpt-4o', 20));
    await book.tally(t('2026-12-02', 'zed', 'gpt-4o', 1, { tenant: 'globex' }));
    const r = await tenantReport(book, 'acme', ['2026-12-01', '2026-12-02']);
    expect(r.byUser.map((u) => [u.user, u.tokens])).to.deep.equal([
      ['bob', 500],
      ['cy', 20],
      ['ada', 10],
    ]);
    expect(r.byModel.map((m) => [m.model, m.tokens, m.requests])).to.deep.equal([
      ['gpt-4o-mini', 500, 1],
      ['gpt-4o', 30, 2],
    ]);
    expect(r.days.map((d) => d.tokens)).to.deep.equal([10, 520]);
    expect(r.total).to.include({ tokens: 530, requests: 3 });
    expect(await tenantsWithUsage(book, ['2026-12-01', '2026-12-02'])).to.deep.equal(['acme', 'globex']);
    expect(cumulative([1, 2, 0, 3])).to.deep.equal([1, 3, 3, 6]);
  });
});
