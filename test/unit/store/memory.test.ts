import { expect } from 'chai';
import { MemoryStore } from '../../../src/store/memory.js';
import { BUDGET_KEY_GRACE_MS } from '../../../src/store/store.js';
import { hitWindows, reserve } from './admit-helpers.js';
import { describeStoreContract } from './store-contract.js';

describeStoreContract('MemoryStore', () => new MemoryStore());

describe('MemoryStore (fake clock)', () => {
  const T0 = 1_700_000_000_000;

  it('starts a fixed window at the first hit and resets it after windowMs', async () => {
    const store = new MemoryStore();
    const hit = [{ key: 'k', limit: 2, windowMs: 1000 }];
    expect((await hitWindows(store, hit, T0)).windows[0]).to.deep.equal({
      limit: 2,
      remaining: 1,
      resetMs: 1000,
    });
    expect((await hitWindows(store, hit, T0 + 400)).windows[0]).to.deep.equal({
      limit: 2,
      remaining: 0,
      resetMs: 600,
    });
    const denied = await hitWindows(store, hit, T0 + 999);
    expect(denied.allowed).to.equal(false);
    expect(denied.windows[0]).to.deep.equal({ limit: 2, remaining: 0, resetMs: 1 });
    // a new window begins at the first hit after the old one ended, not on a fixed grid
    const fresh = await hitWindows(store, hit, T0 + 1500);
    expect(fresh.allowed).to.equal(true);
    expect(fresh.windows[0]).to.deep.equal({ limit: 2, remaining: 1, resetMs: 1000 });
  });

  it('a refused hit does not start a window in the other buckets', async () => {
    const store = new MemoryStore();
    await hitWindows(store, [{ key: 'full', limit: 1, windowMs: 10_000 }], T0);
    await hitWindows(
      store,
      [
        { key: 'other', limit: 5, windowMs: 1000 },
        { key: 'full', limit: 1, windowMs: 10_000 },
      ],
      T0,
    );
    const later = await hitWindows(store, [{ key: 'other', limit: 5, windowMs: 1000 }], T0 + 900);
    expect(later.windows[0]).to.deep.equal({ limit: 5, remaining: 4, resetMs: 1000 });
  });

  it('keeps a budget until its key expires (period end plus the grace), then starts empty', async () => {
    const store = new MemoryStore();
    const periodEnd = T0 + 3_600_000 + BUDGET_KEY_GRACE_MS;
    await reserve(
      store,
      [{ key: 'b', limit: 100, amount: 10, minAmount: 10, expiresAtMs: periodEnd }],
      'r',
      60_000,
      T0,
    );
    await store.settle([{ key: 'b', expiresAtMs: periodEnd }], 'r', [40], T0);
    const justBefore = periodEnd - 1;
    expect(await store.readBudget('b', justBefore)).to.deep.equal({ used: 40, reserved: 0 });
    expect(await store.readBudget('b', justBefore + 1)).to.deep.equal({ used: 0, reserved: 0 });
  });

  it('normalises fractional and negative token amounts to whole tokens', async () => {
    const store = new MemoryStore();
    const r = await reserve(
      store,
      [{ key: 'b', limit: 100, amount: 10.2, minAmount: 10.2, expiresAtMs: T0 + 1e6 }],
      'r',
      1000,
      T0,
    );
    expect(r.reserved).to.deep.equal([11]);
    expect(
      (await store.settle([{ key: 'b', expiresAtMs: T0 + 1e6 }], 'r', [-5], T0)).used,
    ).to.deep.equal([0]);
  });

  it('concurrent reservations never exceed the ledger', async () => {
    const store = new MemoryStore();
    const item = { key: 'b', limit: 10, amount: 1, minAmount: 1, expiresAtMs: T0 + 1e6 };
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => reserve(store, [item], `r${i}`, 1000, T0)),
    );
    expect(results.filter((r) => r.allowed)).to.have.length(10);
  });
});
