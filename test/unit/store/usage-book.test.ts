import { expect } from 'chai';
import { MemoryUsageBook, rowsOf, tallyFields, type UsageTally } from '../../../src/store/usage-book.js';

const DAY_MS = 86_400_000;

function tally(over: Partial<UsageTally> = {}): UsageTally {
  return {
    day: '2026-12-04',
    tenant: 'acme',
    user: 'ada@example.com',
    model: 'gpt-4o-mini',
    inputTokens: 10,
    outputTokens: 5,
    estimatedTokens: 0,
    costMicros: 0,
    expiresAtMs: Date.UTC(2026, 11, 5) + 62 * DAY_MS,
    ...over,
  };
}

describe('store/usage-book', () => {
  it('writes only non-zero fields and reads them back per model', () => {
    const fields = tallyFields(tally({ costMicros: 7, estimatedTokens: 15 }));
    expect(fields.map(([, n]) => n)).to.deep.equal([1, 10, 5, 15, 7]);
    expect(tallyFields(tally({ inputTokens: 0, outputTokens: 0 })).length).to.equal(1);
    const hash = Object.fromEntries(fields.map(([f, n]) => [f, String(n)]));
    expect(rowsOf('ada', hash)).to.deep.equal([
      { user: 'ada', model: 'gpt-4o-mini', requests: 1, inputTokens: 10, outputTokens: 5, estimatedTokens: 15, costMicros: 7 },
    ]);
  });

  it('keeps names with separators apart and ignores unknown fields', () => {
    const odd = tally({ model: 'ft:gpt-4o-mini:org:x:1' });
    const hash = Object.fromEntries(tallyFields(odd).map(([f, n]) => [f, n]));
    hash['junk'] = 3;
    const rows = rowsOf('a:b', hash);
    expect(rows).to.have.length(1);
    expect(rows[0]).to.include({ user: 'a:b', model: 'ft:gpt-4o-mini:org:x:1', inputTokens: 10 });
  });

  it('sums tallies per user and model, per tenant and day', async () => {
    const book = new MemoryUsageBook(() => Date.UTC(2026, 11, 4, 12));
    await book.tally(tally());
    await book.tally(tally({ inputTokens: 1, outputTokens: 1, estimatedTokens: 2 }));
    await book.tally(tally({ model: 'gpt-4o' }));
    await book.tally(tally({ user: 'bob@example.com' }));
    await book.tally(tally({ tenant: 'globex', user: 'cy' }));
    await book.tally(tally({ day: '2026-12-03' }));
    const ada = await book.readDay('2026-12-04', 'acme', 'ada@example.com');
    expect(ada.find((r) => r.model === 'gpt-4o-mini')).to.deep.include({ requests: 2, inputTokens: 11, outputTokens: 6, estimatedTokens: 2 });
    expect(ada.find((r) => r.model === 'gpt-4o')).to.deep.include({ requests: 1 });
    expect((await book.readDay('2026-12-04', 'acme')).map((r) => r.user).sort()).to.deep.equal([
      'ada@example.com',
      'ada@example.com',
      'bob@example.com',
    ]);
    expect(await book.readDay('2026-12-04', 'acme', 'nobody')).to.deep.equal([]);
    expect(await book.readDay('2026-12-01', 'acme')).to.deep.equal([]);
    expect((await book.tenants('2026-12-04')).sort()).to.deep.equal(['acme', 'globex']);
  });

  it('forgets a day once it has expired', async () => {
    let now = Date.UTC(2026, 11, 4);
    const book = new MemoryUsageBook(() => now);
    await book.tally(tally({ expiresAtMs: now + 1000 }));
    expect(await book.tenants('2026-12-04')).to.deep.equal(['acme']);
    now += 1000;
    expect(await book.tenants('2026-12-04')).to.deep.equal([]);
    expect(await book.readDay('2026-12-04', 'acme')).to.deep.equal([]);
  });
});
