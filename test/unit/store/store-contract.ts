/**
 * Behaviour every Store must show, run against the in-memory store (unit) and the Redis store
 * (integration). Window expiry is not here: Redis ends windows on its own clock, so each
 * suite tests it its own way. Reservation expiry follows the callers' `now` in both.
 */
import { expect } from 'chai';
import type { BudgetItem, Store, WindowHit } from '../../../src/store/store.js';
import { hitWindows, reserve } from './admit-helpers.js';

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

    describe('windows', () => {
      it('allows up to the limit, counting down, then denies without consuming', async () => {
        const key = uniq('w');
        const remaining: number[] = [];
        for (let i = 0; i < 3; i += 1) {
          const r = await hitWindows(store, [{ key, limit: 3, windowMs: 60_000 }], T0);
          expect(r.allowed).to.equal(true);
          expect(r.refusedBy).to.equal(undefined);
          remaining.push(r.windows[0]?.remaining ?? -1);
          expect(r.windows[0]?.limit).to.equal(3);
          expect(r.windows[0]?.resetMs).to.be.within(1, 60_000);
        }
        expect(remaining).to.deep.equal([2, 1, 0]);
        const denied = await hitWindows(store, [{ key, limit: 3, windowMs: 60_000 }], T0);
        expect(denied.allowed).to.equal(false);
        expect(denied.refusedBy).to.deep.equal({ kind: 'window', index: 0 });
        expect(denied.windows[0]).to.include({ limit: 3, remaining: 0 });
        expect(denied.windows[0]?.resetMs).to.be.within(1, 60_000);
      });

      it('is all-or-nothing across windows', async () => {
        const [a, b, c] = [uniq('a'), uniq('b'), uniq('c')];
        await hitWindows(store, [{ key: b, limit: 1, windowMs: 60_000 }], T0);
        const hits = [
          { key: a, limit: 5, windowMs: 60_000 },
          { key: b, limit: 1, windowMs: 60_000 },
          { key: c, limit: 5, windowMs: 1000 },
        ];
        const denied = await hitWindows(store, hits, T0);
        expect(denied.allowed).to.equal(false);
        expect(denied.refusedBy).to.deep.equal({ kind: 'window', index: 1 });
        expect(denied.windows.map((r) => r.remaining)).to.deep.equal([5, 0, 5]);
        // a and c were not consumed by the refused call
        const a2 = await hitWindows(store, [{ key: a, limit: 5, windowMs: 60_000 }], T0);
        expect(a2.windows[0]?.remaining).to.equal(4);
      });

      it('counts a key named twice in one call twice', async () => {
        const key = uniq('dup');
        const hit = { key, limit: 3, windowMs: 60_000 };
        expect((await hitWindows(store, [hit, hit], T0)).allowed).to.equal(true);
        const r = await hitWindows(store, [hit, hit], T0);
        expect(r.allowed).to.equal(false);
        expect(r.refusedBy).to.deep.equal({ kind: 'window', index: 1 });
        expect((await hitWindows(store, [hit], T0)).windows[0]?.remaining).to.equal(0);
      });

      it('answers an empty call as allowed', async () => {
        expect(await hitWindows(store, [], T0)).to.deep.equal({
          allowed: true,
          windows: [],
          reserved: [],
          remaining: [],
        });
      });
    });

    describe('budgets: reserve / settle / release', () => {
      /** `minAmount` defaults to `amount`: the request must fit whole (fitToBudget: refuse). */
      const item = (key: string, limit: number, amount: number, minAmount = amount): BudgetItem => ({
        key,
        limit,
        amount,
        minAmount,
        expiresAtMs: PERIOD_END,
      });

      it('reserves the whole estimate when it fits', async () => {
        const key = uniq('b');
        const r = await reserve(store, [item(key, 1000, 300)], 'r1', 60_000, T0);
        expect(r).to.deep.equal({ allowed: true, windows: [], reserved: [300], remaining: [700] });
        expect(await store.readBudget(key, T0)).to.deep.equal({ used: 0, reserved: 300 });
      });

      it('with minAmount below amount, cuts the reservation to the room left', async () => {
        const key = uniq('b');
        await reserve(store, [item(key, 1000, 900)], 'r1', 60_000, T0);
        const r = await reserve(store, [item(key, 1000, 500, 1)], 'r2', 60_000, T0);
        expect(r).to.deep.equal({ allowed: true, windows: [], reserved: [100], remaining: [0] });
        const full = await reserve(store, [item(key, 1000, 1)], 'r3', 60_000, T0);
        expect(full).to.deep.equal({
          allowed: false,
          windows: [],
          reserved: [0],
          remaining: [0],
          refusedBy: { kind: 'budget', index: 0 },
        });
      });

      it('is all-or-nothing across budgets', async () => {
        const [a, b] = [uniq('a'), uniq('b')];
        await reserve(store, [item(b, 100, 100)], 'fill', 60_000, T0);
        const r = await reserve(store, [item(a, 100, 10), item(b, 100, 10)], 'r1', 60_000, T0);
        expect(r).to.deep.equal({
          allowed: false,
          windows: [],
          reserved: [0, 0],
          remaining: [100, 0],
          refusedBy: { kind: 'budget', index: 1 },
        });
        expect(await store.readBudget(a, T0)).to.deep.equal({ used: 0, reserved: 0 });
      });

      it('settles each item to its own actual amount, which may exceed the reservation', async () => {
        const [a, b] = [uniq('a'), uniq('b')];
        await reserve(store, [item(a, 1000, 100), item(b, 5000, 100)], 'r1', 60_000, T0);
        const s = await store.settle(
          [
            { key: a, expiresAtMs: PERIOD_END },
            { key: b, expiresAtMs: PERIOD_END },
          ],
          'r1',
          // tokens in one counter, micro-dollars in the other (a budget in tokens and USD)
          [250, 4321],
          T0,
        );
        expect(s.used).to.deep.equal([250, 4321]);
        expect(await store.readBudget(b, T0)).to.deep.equal({ used: 4321, reserved: 0 });
        expect(await store.readBudget(a, T0)).to.deep.equal({ used: 250, reserved: 0 });
        const next = await reserve(store, [item(a, 1000, 2000, 1)], 'r2', 60_000, T0);
        expect(next).to.deep.equal({ allowed: true, windows: [], reserved: [750], remaining: [0] });
      });

      it('release drops the reservation and charges nothing', async () => {
        const key = uniq('b');
        await reserve(store, [item(key, 1000, 400)], 'r1', 60_000, T0);
        await store.release([{ key, expiresAtMs: PERIOD_END }], 'r1', T0);
        expect(await store.readBudget(key, T0)).to.deep.equal({ used: 0, reserved: 0 });
      });

      it('a retried reservation id replaces its amount rather than adding', async () => {
        const key = uniq('b');
        await reserve(store, [item(key, 1000, 400)], 'r1', 60_000, T0);
        const again = await reserve(store, [item(key, 1000, 700)], 'r1', 60_000, T0);
        expect(again).to.deep.equal({
          allowed: true,
          windows: [],
          reserved: [700],
          remaining: [300],
        });
        expect(await store.readBudget(key, T0)).to.deep.equal({ used: 0, reserved: 700 });
      });

      it('expires reservations after ttlMs (a crashed replica cannot leak them)', async () => {
        const key = uniq('b');
        await reserve(store, [item(key, 100, 100)], 'lost', 5000, T0);
        expect((await reserve(store, [item(key, 100, 1)], 'r2', 5000, T0 + 4999)).allowed).to.equal(
          false,
        );
        expect(await store.readBudget(key, T0 + 5000)).to.deep.equal({ used: 0, reserved: 0 });
        const r = await reserve(store, [item(key, 100, 60)], 'r3', 5000, T0 + 5000);
        expect(r).to.deep.equal({ allowed: true, windows: [], reserved: [60], remaining: [40] });
      });

      it('settling an expired reservation still charges the tokens', async () => {
        const key = uniq('b');
        await reserve(store, [item(key, 100, 50)], 'r1', 1000, T0);
        const s = await store.settle([{ key, expiresAtMs: PERIOD_END }], 'r1', [30], T0 + 2000);
        expect(s.used).to.deep.equal([30]);
        expect(await store.readBudget(key, T0 + 2000)).to.deep.equal({ used: 30, reserved: 0 });
      });

      it('admits while used + reserved < limit and refuses at the limit', async () => {
        const key = uniq('b');
        await reserve(store, [item(key, 100, 99)], 'r1', 60_000, T0);
        expect((await reserve(store, [item(key, 100, 0)], 'r2', 60_000, T0)).allowed).to.equal(
          true,
        );
        await store.settle([{ key, expiresAtMs: PERIOD_END }], 'r1', [100], T0);
        expect((await reserve(store, [item(key, 100, 0)], 'r3', 60_000, T0)).allowed).to.equal(
          false,
        );
      });

      it('refuses on partial room when minAmount = amount: the worst case must fit whole', async () => {
        const key = uniq('b');
        await reserve(store, [item(key, 1000, 900)], 'r1', 60_000, T0);
        const r = await reserve(store, [item(key, 1000, 200)], 'r2', 60_000, T0);
        expect(r).to.deep.equal({
          allowed: false,
          windows: [],
          reserved: [0],
          remaining: [100],
          refusedBy: { kind: 'budget', index: 0 },
        });
        expect(await store.readBudget(key, T0)).to.deep.equal({ used: 0, reserved: 900 });
        // Exactly the room left fits.
        const exact = await reserve(store, [item(key, 1000, 100)], 'r3', 60_000, T0);
        expect(exact).to.deep.equal({ allowed: true, windows: [], reserved: [100], remaining: [0] });
      });

      it('admits when minAmount <= room < amount and reserves the room, refuses below minAmount', async () => {
        const key = uniq('b');
        await reserve(store, [item(key, 1000, 880)], 'r1', 60_000, T0);
        const short = await reserve(store, [item(key, 1000, 500, 121)], 'r2', 60_000, T0);
        expect(short.allowed).to.equal(false);
        expect(short.refusedBy).to.deep.equal({ kind: 'budget', index: 0 });
        expect(short.remaining).to.deep.equal([120]);
        const r = await reserve(store, [item(key, 1000, 500, 120)], 'r3', 60_000, T0);
        expect(r).to.deep.equal({ allowed: true, windows: [], reserved: [120], remaining: [0] });
        expect(await store.readBudget(key, T0)).to.deep.equal({ used: 0, reserved: 1000 });
      });

      it('is all-or-nothing on minAmount across budgets, and reserves min(amount, room) in each', async () => {
        const [a, b] = [uniq('a'), uniq('b')];
        await reserve(store, [item(b, 100, 50)], 'fill', 60_000, T0);
        const refused = await reserve(store, [item(a, 1000, 80), item(b, 100, 80, 60)], 'r1', 60_000, T0);
        expect(refused).to.deep.equal({
          allowed: false,
          windows: [],
          reserved: [0, 0],
          remaining: [1000, 50],
          refusedBy: { kind: 'budget', index: 1 },
        });
        expect(await store.readBudget(a, T0)).to.deep.equal({ used: 0, reserved: 0 });
        const r = await reserve(store, [item(a, 1000, 80, 40), item(b, 100, 80, 40)], 'r2', 60_000, T0);
        expect(r).to.deep.equal({ allowed: true, windows: [], reserved: [80, 50], remaining: [920, 0] });
      });

      it('counts a retried id’s own reservation as room for its minAmount', async () => {
        const key = uniq('b');
        await reserve(store, [item(key, 400, 100)], 'other', 60_000, T0);
        await reserve(store, [item(key, 400, 300)], 'r1', 60_000, T0);
        const again = await reserve(store, [item(key, 400, 350, 300)], 'r1', 60_000, T0);
        expect(again).to.deep.equal({ allowed: true, windows: [], reserved: [300], remaining: [0] });
        const more = await reserve(store, [item(key, 400, 301)], 'r1', 60_000, T0);
        expect(more.allowed).to.equal(false);
        expect(await store.readBudget(key, T0)).to.deep.equal({ used: 0, reserved: 400 });
      });

      it('needs one token of room even when minAmount is 0', async () => {
        const key = uniq('b');
        await reserve(store, [item(key, 10, 10)], 'r1', 60_000, T0);
        const r = await reserve(store, [item(key, 10, 0, 0)], 'r2', 60_000, T0);
        expect(r.allowed).to.equal(false);
        expect(r.refusedBy).to.deep.equal({ kind: 'budget', index: 0 });
      });

      it('reads an unknown budget as empty and answers empty lists', async () => {
        expect(await store.readBudget(uniq('none'), T0)).to.deep.equal({ used: 0, reserved: 0 });
        expect(await reserve(store, [], 'x', 1000, T0)).to.deep.equal({
          allowed: true,
          windows: [],
          reserved: [],
          remaining: [],
        });
        expect(await store.settle([], 'x', [], T0)).to.deep.equal({ used: [] });
      });
    });
    describe('admit: windows and budgets in one all-or-nothing call', () => {
      const admit = (windows: WindowHit[], budgets: BudgetItem[], id: string) =>
        store.admit({ windows, budgets, reservationId: id, ttlMs: 60_000 }, T0);
      const win = (key: string, limit: number): WindowHit => ({ key, limit, windowMs: 60_000 });
      const bud = (key: string, limit: number, amount: number, minAmount = amount): BudgetItem => ({
        key,
        limit,
        amount,
        minAmount,
        expiresAtMs: PERIOD_END,
      });
      // Three limits and two budgets, as one request under all of them asks.
      const request = () => {
        const [w1, w2, w3, b1, b2] = ['w1', 'w2', 'w3', 'b1', 'b2'].map(uniq) as [
          string,
          string,
          string,
          string,
          string,
        ];
        return {
          keys: { w1, w2, w3, b1, b2 },
          windows: [win(w1, 10), win(w2, 2), win(w3, 5)],
          budgets: [bud(b1, 1000, 100), bud(b2, 500, 100)],
        };
      };

      it('admits when every window and budget has room, and counts in all of them', async () => {
        const { keys, windows, budgets } = request();
        const r = await admit(windows, budgets, 'r1');
        expect(r.allowed).to.equal(true);
        expect(r.refusedBy).to.equal(undefined);
        expect(r.windows.map((w) => [w.limit, w.remaining])).to.deep.equal([
          [10, 9],
          [2, 1],
          [5, 4],
        ]);
        expect(r.reserved).to.deep.equal([100, 100]);
        expect(r.remaining).to.deep.equal([900, 400]);
        expect(await store.readBudget(keys.b2, T0)).to.deep.equal({ used: 0, reserved: 100 });
      });

      it('a budget without room refuses, and the request uses no window', async () => {
        const { keys, windows, budgets } = request();
        await reserve(store, [bud(keys.b2, 500, 500)], 'fill', 60_000, T0);
        const r = await admit(windows, budgets, 'r1');
        expect(r.allowed).to.equal(false);
        expect(r.refusedBy).to.deep.equal({ kind: 'budget', index: 1 });
        expect(r.reserved).to.deep.equal([0, 0]);
        expect(r.remaining).to.deep.equal([1000, 0]);
        // the windows are reported as they stand, untouched
        expect(r.windows.map((w) => w.remaining)).to.deep.equal([10, 2, 5]);
        const after = await hitWindows(store, windows, T0);
        expect(after.windows.map((w) => w.remaining)).to.deep.equal([9, 1, 4]);
        expect(await store.readBudget(keys.b1, T0)).to.deep.equal({ used: 0, reserved: 0 });
      });

      it('a full window refuses, and the request reserves in no budget', async () => {
        const { keys, windows, budgets } = request();
        await hitWindows(store, [win(keys.w2, 2), win(keys.w2, 2)], T0);
        const r = await admit(windows, budgets, 'r1');
        expect(r.allowed).to.equal(false);
        expect(r.refusedBy).to.deep.equal({ kind: 'window', index: 1 });
        expect(r.reserved).to.deep.equal([0, 0]);
        expect(r.remaining).to.deep.equal([1000, 500]);
        expect(r.windows.map((w) => w.remaining)).to.deep.equal([10, 0, 5]);
        expect(await store.readBudget(keys.b1, T0)).to.deep.equal({ used: 0, reserved: 0 });
        expect(await store.readBudget(keys.b2, T0)).to.deep.equal({ used: 0, reserved: 0 });
        const w1 = await hitWindows(store, [win(keys.w1, 10)], T0);
        expect(w1.windows[0]?.remaining).to.equal(9);
      });

      it('when a window and a budget are both full, the refusal names the window', async () => {
        const { keys, windows, budgets } = request();
        await hitWindows(
          store,
          [win(keys.w3, 5), win(keys.w3, 5), win(keys.w3, 5), win(keys.w3, 5), win(keys.w3, 5)],
          T0,
        );
        await reserve(store, [bud(keys.b1, 1000, 1000)], 'fill', 60_000, T0);
        const r = await admit(windows, budgets, 'r1');
        expect(r.refusedBy).to.deep.equal({ kind: 'window', index: 2 });
      });

      it('cuts the reservation to the room left (minAmount below it) while counting the windows', async () => {
        const { keys, windows } = request();
        await reserve(store, [bud(keys.b2, 500, 450)], 'fill', 60_000, T0);
        const r = await admit(windows, [bud(keys.b1, 1000, 100, 30), bud(keys.b2, 500, 100, 30)], 'r1');
        expect(r.allowed).to.equal(true);
        expect(r.reserved).to.deep.equal([100, 50]);
        expect(r.remaining).to.deep.equal([900, 0]);
        expect(r.windows.map((w) => w.remaining)).to.deep.equal([9, 1, 4]);
      });

      it('a budget with room below minAmount refuses, and the request uses no window', async () => {
        const { keys, windows, budgets } = request();
        await reserve(store, [bud(keys.b2, 500, 450)], 'fill', 60_000, T0);
        // 50 left in b2, the request's 100 does not fit whole
        const r = await admit(windows, budgets, 'r1');
        expect(r.allowed).to.equal(false);
        expect(r.refusedBy).to.deep.equal({ kind: 'budget', index: 1 });
        expect(r.reserved).to.deep.equal([0, 0]);
        expect(r.remaining).to.deep.equal([1000, 50]);
        expect(r.windows.map((w) => w.remaining)).to.deep.equal([10, 2, 5]);
        expect(await store.readBudget(keys.b1, T0)).to.deep.equal({ used: 0, reserved: 0 });
      });
    });

    describe('concurrency slots: a reservation of 1 in a counter never charged', () => {
      const TTL = 5000;
      // As limits/rate-limit.ts asks for one: the key outlives its newest slot.
      const slot = (key: string, limit: number): BudgetItem => ({
        key,
        limit,
        amount: 1,
        minAmount: 1,
        expiresAtMs: T0 + TTL + 60_000,
      });
      const take = (key: string, limit: number, id: string, now = T0) =>
        store.admit({ windows: [], budgets: [slot(key, limit)], reservationId: id, ttlMs: TTL }, now);
      const ref = (key: string) => ({ key, expiresAtMs: T0 + TTL + 60_000 });

      it('admits up to the limit in flight, refuses the next, and a release frees one slot', async () => {
        const key = uniq('cc');
        const taken = await Promise.all(['a', 'b', 'c'].map((id) => take(key, 2, id)));
        expect(taken.map((r) => r.allowed).sort()).to.deep.equal([false, true, true]);
        const refused = taken.find((r) => !r.allowed);
        expect(refused?.refusedBy).to.deep.equal({ kind: 'budget', index: 0 });
        expect(await store.readBudget(key, T0)).to.deep.equal({ used: 0, reserved: 2 });
        const holder = taken.findIndex((r) => r.allowed);
        await store.release([ref(key)], ['a', 'b', 'c'][holder] as string, T0);
        expect(await store.readBudget(key, T0)).to.deep.equal({ used: 0, reserved: 1 });
        expect((await take(key, 2, 'd')).allowed).to.equal(true);
        expect((await take(key, 2, 'e')).allowed).to.equal(false);
      });

      it('settling to 0 frees the slot and charges nothing', async () => {
        const key = uniq('cc');
        await take(key, 1, 'a');
        const s = await store.settle([ref(key)], 'a', [0], T0);
        expect(s.used).to.deep.equal([0]);
        expect(await store.readBudget(key, T0)).to.deep.equal({ used: 0, reserved: 0 });
        expect((await take(key, 1, 'b')).allowed).to.equal(true);
      });

      it('a slot nobody releases expires after the TTL (a crashed replica cannot leak it)', async () => {
        const key = uniq('cc');
        await take(key, 1, 'lost');
        expect((await take(key, 1, 'b', T0 + TTL - 1)).allowed).to.equal(false);
        expect((await take(key, 1, 'c', T0 + TTL)).allowed).to.equal(true);
      });

      it('is all-or-nothing with windows and budgets in the one admission', async () => {
        const [cc, w, b] = [uniq('cc'), uniq('w'), uniq('b')];
        const budget = { key: b, limit: 100, amount: 60, minAmount: 60, expiresAtMs: PERIOD_END };
        const admit = (id: string) =>
          store.admit(
            { windows: [{ key: w, limit: 10, windowMs: 60_000 }], budgets: [slot(cc, 2), budget], reservationId: id, ttlMs: TTL },
            T0,
          );
        expect((await admit('r1')).allowed).to.equal(true);
        // The budget has 40 left: refused, and neither the slot nor the window is taken.
        const r2 = await admit('r2');
        expect(r2.refusedBy).to.deep.equal({ kind: 'budget', index: 1 });
        expect(await store.readBudget(cc, T0)).to.deep.equal({ used: 0, reserved: 1 });
        expect(r2.windows[0]?.remaining).to.equal(9);
        // The slots are full: refused by the slot, nothing reserved in the budget.
        await take(cc, 2, 'other');
        await store.release([{ key: b, expiresAtMs: PERIOD_END }], 'r1', T0);
        const r3 = await admit('r3');
        expect(r3.refusedBy).to.deep.equal({ kind: 'budget', index: 0 });
        expect(r3.reserved).to.deep.equal([0, 0]);
        expect(await store.readBudget(b, T0)).to.deep.equal({ used: 0, reserved: 0 });
        // Settling the admission frees its slot with its tokens, in one call.
        await store.settle([ref(cc)], 'r1', [0], T0);
        const r4 = await admit('r4');
        expect(r4.allowed).to.equal(true);
        const s = await store.settle([ref(cc), { key: b, expiresAtMs: PERIOD_END }], 'r4', [0, 25], T0);
        expect(s.used).to.deep.equal([0, 25]);
        expect(await store.readBudget(cc, T0)).to.deep.equal({ used: 0, reserved: 1 });
      });
    });
  });
}
