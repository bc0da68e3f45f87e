/**
 * Exact, single-process counters: the default store (one replica) and the `local` fallback
 * of the guarded store. Time comes only from the callers' `now`, so tests run on a fake clock.
 *
 * Why not rate-limiter-flexible's RateLimiterMemory here: it consumes one key per call and
 * counts a rejected attempt too, so an all-or-nothing hit on several windows would need
 * compensating `reward` calls; and it reads Date.now() and arms a timer per key, so a fake
 * clock cannot drive it. A Map of plain counters checked and then updated in one synchronous
 * step is exact and simpler.
 */
import {
  BUDGET_KEY_GRACE_MS,
  wholeTokens,
  type BudgetItem,
  type BudgetRef,
  type BudgetState,
  type HitResult,
  type ReserveResult,
  type SettleResult,
  type Store,
  type WindowHit,
  type WindowState,
} from './store.js';

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
  hitWindows(hits: readonly WindowHit[], now: number): Promise<HitResult> {
    this.sweep(now);
    const pending = new Map<string, number>();
    let deniedIndex: number | undefined;
    hits.forEach((hit, i) => {
      const w = this.liveWindow(hit.key, now);
      const before = pending.get(hit.key) ?? 0;
      if (deniedIndex === undefined && (w?.count ?? 0) + before >= hit.limit) deniedIndex = i;
      pending.set(hit.key, before + 1);
    });
    if (deniedIndex === undefined) {
      for (const hit of hits) {
        const w = this.liveWindow(hit.key, now) ?? { count: 0, endsAt: now + hit.windowMs };
        w.count += 1;
        this.windows.set(hit.key, w);
      }
    }
    const results = hits.map((hit): WindowState => {
      const w = this.liveWindow(hit.key, now);
      return {
        limit: hit.limit,
        remaining: Math.max(0, hit.limit - (w?.count ?? 0)),
        resetMs: w ? w.endsAt - now : hit.windowMs,
      };
    });
    return Promise.resolve(
      deniedIndex === undefined
        ? { allowed: true, results }
        : { allowed: false, results, deniedIndex },
    );
  }

  reserve(
    items: readonly BudgetItem[],
    reservationId: string,
    ttlMs: number,
    now: number,
  ): Promise<ReserveResult> {
    this.sweep(now);
    const budgets = items.map((item) => this.budget(item.key, item.expiresAtMs, now));
    // A retried reservation id replaces its earlier amount rather than adding to it.
    const roomOf = (b: Budget, limit: number): number =>
      limit - b.used - reservedTotal(b) + (b.reservations.get(reservationId)?.amount ?? 0);
    const deniedIndex = items.findIndex((item, i) => roomOf(budgets[i] as Budget, item.limit) <= 0);
    const reserved = items.map((item, i) => {
      if (deniedIndex !== -1) return 0;
      const b = budgets[i] as Budget;
      const amount = Math.min(wholeTokens(item.amount), roomOf(b, item.limit));
      b.reservations.set(reservationId, { amount, expiresAt: now + ttlMs });
      return amount;
    });
    const remaining = items.map((item, i) => {
      const b = budgets[i] as Budget;
      return Math.max(0, item.limit - b.used - reservedTotal(b));
    });
    return Promise.resolve(
      deniedIndex === -1
        ? { allowed: true, reserved, remaining }
        : { allowed: false, reserved, remaining, deniedIndex },
    );
  }

  settle(
    items: readonly BudgetRef[],
    reservationId: string,
    actualTokens: number,
    now: number,
  ): Promise<SettleResult> {
    const actual = wholeTokens(actualTokens);
    const used = items.map((item) => {
      const b = this.budget(item.key, item.expiresAtMs, now);
      b.reservations.delete(reservationId);
      b.used += actual;
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

  private budget(key: string, periodEnd: number, now: number): Budget {
    const expiresAt = periodEnd + BUDGET_KEY_GRACE_MS;
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
