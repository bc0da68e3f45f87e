import { expect } from 'chai';
import { TollgateError } from '../../../src/domain/errors.js';
import { GuardedStore, type BreakerState } from '../../../src/store/guarded.js';
import { MemoryStore } from '../../../src/store/memory.js';
import type { CounterReader, Store } from '../../../src/store/store.js';
import { hitWindows, reserve } from './admit-helpers.js';

type Mode = 'ok' | 'fail' | 'hang';

/** A primary store that works (backed by memory), fails at once, or never answers. */
function fakePrimary(): { store: Store & CounterReader; setMode(m: Mode): void; calls(): number } {
  const inner = new MemoryStore();
  let mode: Mode = 'ok';
  let calls = 0;
  const wrap =
    <A extends unknown[], R>(fn: (...args: A) => Promise<R>) =>
    (...args: A): Promise<R> => {
      calls += 1;
      if (mode === 'fail') return Promise.reject(new Error('connection refused'));
      if (mode === 'hang') return new Promise<R>(() => undefined);
      return fn(...args);
    };
  const store: Store & CounterReader = {
    admit: wrap(inner.admit.bind(inner)),
    settle: wrap(inner.settle.bind(inner)),
    release: wrap(inner.release.bind(inner)),
    readBudget: wrap(inner.readBudget.bind(inner)),
    readWindow: wrap(inner.readWindow.bind(inner)),
    close: () => inner.close(),
  };
  return { store, setMode: (m) => (mode = m), calls: () => calls };
}

const HIT = [{ key: 'k', limit: 2, windowMs: 60_000 }];
const BUDGET = [{ key: 'b', limit: 100, amount: 10, minAmount: 10, expiresAtMs: 2e12 }];

describe('GuardedStore', () => {
  let clock = 0;
  const options = { timeoutMs: 20, failureThreshold: 3, probeIntervalMs: 1000, clock: () => clock };
  beforeEach(() => {
    clock = 0;
  });

  it('passes calls through while the primary answers', async () => {
    const p = fakePrimary();
    const g = new GuardedStore(p.store, { ...options, onUnavailable: 'closed' });
    expect((await hitWindows(g, HIT, 0)).windows[0]?.remaining).to.equal(1);
    expect((await hitWindows(g, HIT, 0)).degraded).to.equal(undefined);
    expect(g.stats()).to.deep.equal({ state: 'closed', errors: 0, timeouts: 0, fallbacks: 0 });
  });

  it('reads a window from the primary without hitting it; a failure follows the policy', async () => {
    const p = fakePrimary();
    const closed = new GuardedStore(p.store, { ...options, onUnavailable: 'closed' });
    await hitWindows(closed, HIT, 0);
    expect(await closed.readWindow('k', 1000)).to.deep.equal({ count: 1, resetMs: 59_000 });
    expect(await closed.readWindow('k', 1000)).to.deep.equal({ count: 1, resetMs: 59_000 });
    p.setMode('fail');
    const err: unknown = await closed.readWindow('k', 1000).then(() => undefined, (e: unknown) => e);
    expect((err as TollgateError).code).to.equal('store_unavailable');
    const open = new GuardedStore(p.store, { ...options, onUnavailable: 'open' });
    expect(await open.readWindow('k', 1000)).to.deep.equal({ count: 0 });
    // A primary that cannot read windows (none of ours): nothing to read, nothing called.
    const plain: Store = { admit: (r, n) => p.store.admit(r, n), settle: (...a) => p.store.settle(...a), release: (...a) => p.store.release(...a), readBudget: (k, n) => p.store.readBudget(k, n), close: () => p.store.close() };
    const calls = p.calls();
    expect(await new GuardedStore(plain, { ...options, onUnavailable: 'closed' }).readWindow('k', 0)).to.deep.equal({ count: 0 });
    expect(p.calls()).to.equal(calls);
  });

  it('closed: a failure becomes TollgateError(store_unavailable)', async () => {
    const p = fakePrimary();
    p.setMode('fail');
    const g = new GuardedStore(p.store, { ...options, onUnavailable: 'closed' });
    const err: unknown = await hitWindows(g, HIT, 0).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).to.be.instanceOf(TollgateError);
    expect((err as TollgateError).code).to.equal('store_unavailable');
    expect(g.stats()).to.include({ errors: 1, fallbacks: 1 });
  });

  it('open: allows and counts nothing, flagged degraded', async () => {
    const p = fakePrimary();
    p.setMode('fail');
    const g = new GuardedStore(p.store, { ...options, onUnavailable: 'open' });
    for (let i = 0; i < 5; i += 1) {
      const r = await hitWindows(g, HIT, 0);
      expect(r).to.deep.equal({
        allowed: true,
        windows: [{ limit: 2, remaining: 2, resetMs: 60_000 }],
        reserved: [],
        remaining: [],
        degraded: 'open',
      });
    }
    expect(await reserve(g, BUDGET, 'r', 1000, 0)).to.deep.equal({
      allowed: true,
      windows: [],
      reserved: [0],
      remaining: [100],
      degraded: 'open',
    });
    expect(await g.settle(BUDGET, 'r', [50], 0)).to.deep.equal({ used: [0], degraded: 'open' });
  });

  it('local: counts per replica while the primary is down', async () => {
    const p = fakePrimary();
    p.setMode('fail');
    const g = new GuardedStore(p.store, { ...options, onUnavailable: 'local' });
    const r1 = await hitWindows(g, HIT, 0);
    const r2 = await hitWindows(g, HIT, 0);
    const r3 = await hitWindows(g, HIT, 0);
    expect([r1.allowed, r2.allowed, r3.allowed]).to.deep.equal([true, true, false]);
    expect(r3.degraded).to.equal('local');
    expect((await reserve(g, BUDGET, 'r', 1000, 0)).reserved).to.deep.equal([10]);
    expect(await g.readBudget('b', 0)).to.deep.equal({ used: 0, reserved: 10 });
  });

  it('a hanging primary costs at most timeoutMs per call', async () => {
    const p = fakePrimary();
    p.setMode('hang');
    const g = new GuardedStore(p.store, { ...options, onUnavailable: 'open' });
    const started = performance.now();
    const r = await hitWindows(g, HIT, 0);
    expect(performance.now() - started).to.be.below(200);
    expect(r.degraded).to.equal('open');
    expect(g.stats()).to.include({ errors: 1, timeouts: 1 });
  });

  it('opens after N consecutive failures, then probes at most once per interval', async () => {
    const p = fakePrimary();
    const states: BreakerState[] = [];
    const g = new GuardedStore(p.store, {
      ...options,
      onUnavailable: 'open',
      onStateChange: (s) => states.push(s),
    });
    p.setMode('hang');
    await Promise.all([hitWindows(g, HIT, 0), hitWindows(g, HIT, 0), hitWindows(g, HIT, 0)]);
    expect(g.stats().state).to.equal('open');
    expect(p.calls()).to.equal(3);
    // skipped entirely while open: no timeout paid
    const started = performance.now();
    for (let i = 0; i < 20; i += 1) await hitWindows(g, HIT, 0);
    expect(performance.now() - started).to.be.below(50);
    expect(p.calls()).to.equal(3);

    clock = 1000; // one probe, concurrent calls do not pile onto it
    await Promise.all([hitWindows(g, HIT, 0), hitWindows(g, HIT, 0), hitWindows(g, HIT, 0)]);
    expect(p.calls()).to.equal(4);
    expect(g.stats().state).to.equal('open');
    clock = 1999;
    await hitWindows(g, HIT, 0);
    expect(p.calls()).to.equal(4);

    p.setMode('ok');
    clock = 2000;
    expect((await hitWindows(g, HIT, 0)).degraded).to.equal(undefined);
    expect(g.stats()).to.deep.equal({ state: 'closed', errors: 4, timeouts: 4, fallbacks: 27 });
    expect(states).to.deep.equal(['open', 'half-open', 'open', 'half-open', 'closed']);
  });

  it('a success in between resets the consecutive-failure count', async () => {
    const p = fakePrimary();
    const g = new GuardedStore(p.store, { ...options, onUnavailable: 'open' });
    p.setMode('fail');
    await hitWindows(g, HIT, 0);
    await hitWindows(g, HIT, 0);
    p.setMode('ok');
    await hitWindows(g, HIT, 0);
    p.setMode('fail');
    await hitWindows(g, HIT, 0);
    await hitWindows(g, HIT, 0);
    expect(g.stats().state).to.equal('closed');
    await hitWindows(g, HIT, 0);
    expect(g.stats().state).to.equal('open');
  });

  it('closed policy with the breaker open refuses without touching the primary', async () => {
    const p = fakePrimary();
    p.setMode('fail');
    const g = new GuardedStore(p.store, {
      ...options,
      onUnavailable: 'closed',
      failureThreshold: 1,
    });
    await g.readBudget('b', 0).catch(() => undefined);
    const err: unknown = await g.readBudget('b', 0).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as TollgateError).code).to.equal('store_unavailable');
    expect(p.calls()).to.equal(1);
  });
  it('one admission is one guarded call: one error, one fallback, whatever it counts', async () => {
    const p = fakePrimary();
    p.setMode('fail');
    const g = new GuardedStore(p.store, { ...options, onUnavailable: 'open' });
    const r = await g.admit(
      {
        windows: [...HIT, { key: 'k2', limit: 5, windowMs: 1000 }],
        budgets: BUDGET,
        reservationId: 'r',
        ttlMs: 1000,
      },
      0,
    );
    expect(r).to.deep.equal({
      allowed: true,
      windows: [
        { limit: 2, remaining: 2, resetMs: 60_000 },
        { limit: 5, remaining: 5, resetMs: 1000 },
      ],
      reserved: [0],
      remaining: [100],
      degraded: 'open',
    });
    expect(p.calls()).to.equal(1);
    expect(g.stats()).to.include({ errors: 1, fallbacks: 1 });
  });

  it('local: windows and budgets fall back together, still all or nothing', async () => {
    const p = fakePrimary();
    p.setMode('fail');
    const g = new GuardedStore(p.store, { ...options, onUnavailable: 'local' });
    const admit = (amount: number) =>
      g.admit(
        {
          windows: HIT,
          budgets: [{ ...BUDGET[0]!, amount, minAmount: amount }],
          reservationId: `r${amount}`,
          ttlMs: 1000,
        },
        0,
      );
    expect((await admit(100)).reserved).to.deep.equal([100]);
    const refused = await admit(1);
    expect(refused).to.include({ allowed: false, degraded: 'local' });
    expect(refused.refusedBy).to.deep.equal({ kind: 'budget', index: 0 });
    // the budget refused, so the window still has its second request
    expect((await hitWindows(g, HIT, 0)).windows[0]?.remaining).to.equal(0);
  });
});
