/**
 * Exact, single-process counters: the default store (one replica) and the `local` fallback
 * of the guarded store. Time comes only from the callers' `now`, so tests run on a fake clock.
 *
 * Why not rate-limiter-flexible's RateLimiterMemory here: it consumes one key per call and
 * counts a rejected attempt too, so an all-or-nothing admission over several windows and
 * budgets would need compensating `reward` calls; and it reads Date.now() and arms a timer per key, so a fake
 * clock cannot drive it. A Map of plain counters checked and then updated in one synchronous
 * step is exact and simpler.
 */
import { refusalOf, wholeTokens, type AdmitRequest, type AdmitResult, type BudgetState, type SettleResult, type Store, type WindowCount, type WindowState } from './store.js';
import { type BudgetRef } from '../domain/reservation.js';

interface Window {
  count: number;
  endsAt: number;
}

interface Budget {
  used: number;
  readonly reservations: Map<string, { amount: number; expiresAt: number }>;
  expiresAt: number;
}

/** Expired entries are dropped on access and by a sweep at most this often. */
const SWEEP_INTERVAL_MS = 60_000;

export class MemoryStore implements Store {
  private readonly windows = new Map<string, Window>();
  private readonly budgets = new Map<string, Budget>();
  private lastSweep = -Infinity;

  // Every method body is synchronous: no other call can interleave between check and consume.
  admit(request: AdmitRequest, now: number): Promise<AdmitResult> {
    this.sweep(now);
    const { windows: hits, budgets: items, reservationId, ttlMs } = request;
    // Check everything first, against live state only (a refused call creates no entries).
    const pending = new Map<string, number>();
    const fullWindow = hits.findIndex((hit) => {
      const before = pending.get(hit.key) ?? 0;
      pending.set(hit.key, before + 1);
      return (this.liveWindow(hit.key, now)?.count ?? 0) + before >= hit.limit;
    });
    // A retried reservation id replaces its earlier amount rather than adding to it.
    const roomOf = (b: Budget | undefined, limit: number): number =>
      b === undefined
        ? limit
        : limit - b.used - reservedTotal(b) + (b.reservations.get(reservationId)?.amount ?? 0);
    // Never admitted on partial room: at least `minAmount` (and 1) must be left.
    const fullBudget = items.findIndex(
      (item) =>
        roomOf(this.liveBudget(item.key, now), item.limit) < Math.max(1, wholeTokens(item.minAmount)),
    );
    const refusedBy = refusalOf(fullWindow, fullBudget);

    if (refusedBy === undefined) {
      for (const hit of hits) {
        const w = this.liveWindow(hit.key, now) ?? { count: 0, endsAt: now + hit.windowMs };
        w.count += 1;
        this.windows.set(hit.key, w);
      }
    }
    const reserved = items.map((item) => {
      if (refusedBy !== undefined) return 0;
      const b = this.budget(item.key, item.expiresAtMs, now);
      const amount = Math.min(wholeTokens(item.amount), roomOf(b, item.limit));
      b.reservations.set(reservationId, { amount, expiresAt: now + ttlMs });
      return amount;
    });

    const windows = hits.map((hit): WindowState => {
      const w = this.liveWindow(hit.key, now);
      return {
        limit: hit.limit,
        remaining: Math.max(0, hit.limit - (w?.count ?? 0)),
        resetMs: w ? w.endsAt - now : hit.windowMs,
      };
    });
    const remaining = items.map((item) => {
      const b = this.liveBudget(item.key, now);
      return Math.max(0, item.limit - (b ? b.used + reservedTotal(b) : 0));
    });
    return Promise.resolve(
      refusedBy === undefined
        ? { allowed: true, windows, reserved, remaining }
        : { allowed: false, windows, reserved, remaining, refusedBy },
    );
  }

  settle(
    items: readonly BudgetRef[],
    reservationId: string,
    amounts: readonly number[],
    now: number,
  ): Promise<SettleResult> {
    const used = items.map((item, i) => {
      const b = this.budget(item.key, item.expiresAtMs, now);
      b.reservations.delete(reservationId);
      b.used += wholeTokens(amounts[i] ?? 0);
      return b.used;
    });
    return Promise.resolve({ used });
  }

  release(items: readonly BudgetRef[], reservationId: string, now: number): Promise<void> {
    for (const item of items) this.liveBudget(item.key, now)?.reservations.delete(reservationId);
    return Promise.resolve();
  }

  readBudget(key: string, now: number): Promise<BudgetState> {
    const b = this.liveBudget(key, now);
    return Promise.resolve({ used: b?.used ?? 0, reserved: b ? reservedTotal(b) : 0 });
  }

  readWindow(key: string, now: number): Promise<WindowCount> {
    const w = this.liveWindow(key, now);
    return Promise.resolve(w ? { count: w.count, resetMs: w.endsAt - now } : { count: 0 });
  }

  close(): Promise<void> {
    this.windows.clear();
    this.budgets.clear();
    return Promise.resolve();
  }

  private liveWindow(key: string, now: number): Window | undefined {
    const w = this.windows.get(key);
    if (w && w.endsAt <= now) {
      this.windows.delete(key);
      return undefined;
    }
    return w;
  }

  /** The budget with its expired reservations purged, or undefined when absent or expired. */
  private liveBudget(key: string, now: number): Budget | undefined {
    const b = this.budgets.get(key);
    if (!b) return undefined;
    if (b.expiresAt <= now) {
      this.budgets.delete(key);
      return undefined;
    }
    for (const [id, r] of b.reservations) if (r.expiresAt <= now) b.reservations.delete(id);
    return b;
  }

  private budget(key: string, expiresAt: number, now: number): Budget {
    const b = this.liveBudget(key, now) ?? { used: 0, reservations: new Map(), expiresAt };
    b.expiresAt = Math.max(b.expiresAt, expiresAt);
    this.budgets.set(key, b);
    return b;
  }

  private sweep(now: number): void {
    if (now - this.lastSweep < SWEEP_INTERVAL_MS) return;
    this.lastSweep = now;
    for (const key of this.windows.keys()) this.liveWindow(key, now);
    for (const key of this.budgets.keys()) this.liveBudget(key, now);
  }
}

function reservedTotal(b: Budget): number {
  let total = 0;
  for (const r of b.reservations.values()) total += r.amount;
  return total;
}
