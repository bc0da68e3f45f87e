/**
 * Behaviour every Store must show, run against the in-memory store (unit) and the Redis store
 * (integration). Window expiry is not here: Redis ends windows on its own clock, so each
 * suite tests it its own way. Reservation expiry follows the callers' `now` in both.
 */
import { expect } from 'chai';
import type { Store } from '../../../src/store/store.js';

// Real time: Redis expires budget keys at absolute instants (period end + grace).
const T0 = Date.now();
const PERIOD_END = T0 + 3_600_000;
let seq = 0;
/** Keys unique per test, so a shared Redis needs no flushing between tests. */
const uniq = (name: string): string => `${name}-${process.pid}-${++seq}`;

export function describeStoreContract(title: string, make: () => Promise<Store> | Store): void {
  describe(`${title}: store contract`, () => {
    let store: Store;
    beforeEach(async () => {
      store = await make();
    });
    afterEach(async () => {
      await store.close();
    });

    describe('hitWindows', () => {
      it('allows up to the limit, counting down, then denies without consuming', async () => {
        const key = uniq('w');
        const remaining: number[] = [];
        for (let i = 0; i < 3; i += 1) {
          const r = await store.hitWindows([{ key, limit: 3, windowMs: 60_000 }], T0);
          expect(r.allowed).to.equal(true);
          expect(r.deniedIndex).to.equal(undefined);
          remaining.push(r.results[0]?.remaining ?? -1);
          expect(r.results[0]?.limit).to.equal(3);
          expect(r.results[0]?.resetMs).to.be.within(1, 60_000);
        }
        expect(remaining).to.deep.equal([2, 1, 0]);
        const denied = await store.hitWindows([{ key, limit: 3, windowMs: 60_000 }], T0);
        expect(denied).to.include({ allowed: false, deniedIndex: 0 });
        expect(denied.results[0]).to.include({ limit: 3, remaining: 0 });
        expect(denied.results[0]?.resetMs).to.be.within(1, 60_000);
      });

      it('is all-or-nothing across windows', async () => {
        const [a, b, c] = [uniq('a'), uniq('b'), uniq('c')];
        await store.hitWindows([{ key: b, limit: 1, windowMs: 60_000 }], T0);
        const hits = [
          { key: a, limit: 5, windowMs: 60_000 },
          { key: b, limit: 1, windowMs: 60_000 },
          { key: c, limit: 5, windowMs: 1000 },
        ];
        const denied = await store.hitWindows(hits, T0);
        expect(denied.allowed).to.equal(false);
        expect(denied.deniedIndex).to.equal(1);
        expect(denied.results.map((r) => r.remaining)).to.deep.equal([5, 0, 5]);
        // a and c were not consumed by the refused call
        const a2 = await store.hitWindows([{ key: a, limit: 5, windowMs: 60_000 }], T0);
        expect(a2.results[0]?.remaining).to.equal(4);
      });

      it('counts a key named twice in one call twice', async () => {
        const key = uniq('dup');
        const hit = { key, limit: 3, windowMs: 60_000 };
        expect((await store.hitWindows([hit, hit], T0)).allowed).to.equal(true);
        const r = await store.hitWindows([hit, hit], T0);
        expect(r).to.include({ allowed: false, deniedIndex: 1 });
        expect((await store.hitWindows([hit], T0)).results[0]?.remaining).to.equal(0);
      });

      it('answers an empty call as allowed', async () => {
        expect(await store.hitWindows([], T0)).to.deep.equal({ allowed: true, results: [] });
      });
    });

    describe('reserve / settle / release', () => {
      const item = (key: string, limit: number, amount: number) => ({
        key,
        limit,
        amount,
        expiresAtMs: PERIOD_END,
      });

      it('reserves the whole estimate when it fits', async () => {
        const key = uniq('b');
        const r = await store.reserve([item(key, 1000, 300)], 'r1', 60_000, T0);
        expect(r).to.deep.equal({ allowed: true, reserved: [300], remaining: [700] });
        expect(await store.readBudget(key, T0)).to.deep.equal({ used: 0, reserved: 300 });
      });

      it('clamps a large estimate to the room left instead of refusing', async () => {
        const key = uniq('b');
        await store.reserve([item(key, 1000, 900)], 'r1', 60_000, T0);
        const r = await store.reserve([item(key, 1000, 500)], 'r2', 60_000, T0);
        expect(r).to.deep.equal({ allowed: true, reserved: [100], remaining: [0] });
        const full = await store.reserve([item(key, 1000, 1)], 'r3', 60_000, T0);
        expect(full).to.deep.equal({
          allowed: false,
          reserved: [0],
          remaining: [0],
          deniedIndex: 0,
        });
      });

      it('is all-or-nothing across budgets', async () => {
        const [a, b] = [uniq('a'), uniq('b')];
        await store.reserve([item(b, 100, 100)], 'fill', 60_000, T0);
        const r = await store.reserve([item(a, 100, 10), item(b, 100, 10)], 'r1', 60_000, T0);
        expect(r).to.deep.equal({
          allowed: false,
          reserved: [0, 0],
          remaining: [100, 0],
          deniedIndex: 1,
        });
        expect(await store.readBudget(a, T0)).to.deep.equal({ used: 0, reserved: 0 });
      });

      it('settles to the actual usage, which may exceed the reservation', async () => {
        const [a, b] = [uniq('a'), uniq('b')];
        await store.reserve([item(a, 1000, 100), item(b, 5000, 100)], 'r1', 60_000, T0);
        const s = await store.settle(
          [
            { key: a, expiresAtMs: PERIOD_END },
            { key: b, expiresAtMs: PERIOD_END },
          ],
          'r1',
          250,
          T0,
        );
        expect(s.used).to.deep.equal([250, 250]);
        expect(await store.readBudget(a, T0)).to.deep.equal({ used: 250, reserved: 0 });
        const next = await store.reserve([item(a, 1000, 2000)], 'r2', 60_000, T0);
        expect(next).to.deep.equal({ allowed: true, reserved: [750], remaining: [0] });
      });

      it('release drops the reservation and charges nothing', async () => {
        const key = uniq('b');
        await store.reserve([item(key, 1000, 400)], 'r1', 60_000, T0);
        await store.release([{ key, expiresAtMs: PERIOD_END }], 'r1', T0);
        expect(await store.readBudget(key, T0)).to.deep.equal({ used: 0, reserved: 0 });
      });

      it('a retried reservation id replaces its amount rather than adding', async () => {
        const key = uniq('b');
        await store.reserve([item(key, 1000, 400)], 'r1', 60_000, T0);
        const again = await store.reserve([item(key, 1000, 700)], 'r1', 60_000, T0);
        expect(again).to.deep.equal({ allowed: true, reserved: [700], remaining: [300] });
        expect(await store.readBudget(key, T0)).to.deep.equal({ used: 0, reserved: 700 });
      });

      it('expires reservations after ttlMs (a crashed replica cannot leak them)', async () => {
        const key = uniq('b');
        await store.reserve([item(key, 100, 100)], 'lost', 5000, T0);
        expect((await store.reserve([item(key, 100, 1)], 'r2', 5000, T0 + 4999)).allowed).to.equal(
          false,
        );
        expect(await store.readBudget(key, T0 + 5000)).to.deep.equal({ used: 0, reserved: 0 });
        const r = await store.reserve([item(key, 100, 60)], 'r3', 5000, T0 + 5000);
        expect(r).to.deep.equal({ allowed: true, reserved: [60], remaining: [40] });
      });

      it('settling an expired reservation still charges the tokens', async () => {
        const key = uniq('b');
        await store.reserve([item(key, 100, 50)], 'r1', 1000, T0);
        const s = await store.settle([{ key, expiresAtMs: PERIOD_END }], 'r1', 30, T0 + 2000);
        expect(s.used).to.deep.equal([30]);
        expect(await store.readBudget(key, T0 + 2000)).to.deep.equal({ used: 30, reserved: 0 });
      });

      it('admits while used + reserved < limit and refuses at the limit', async () => {
        const key = uniq('b');
        await store.reserve([item(key, 100, 99)], 'r1', 60_000, T0);
        expect((await store.reserve([item(key, 100, 0)], 'r2', 60_000, T0)).allowed).to.equal(true);
        await store.settle([{ key, expiresAtMs: PERIOD_END }], 'r1', 100, T0);
        expect((await store.reserve([item(key, 100, 0)], 'r3', 60_000, T0)).allowed).to.equal(
          false,
        );
      });

      it('reads an unknown budget as empty and answers empty lists', async () => {
        expect(await store.readBudget(uniq('none'), T0)).to.deep.equal({ used: 0, reserved: 0 });
        expect(await store.reserve([], 'x', 1000, T0)).to.deep.equal({
          allowed: true,
          reserved: [],
          remaining: [],
        });
        expect(await store.settle([], 'x', 5, T0)).to.deep.equal({ used: [] });
      });
    });
  });
}
