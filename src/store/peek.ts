/**
 * A store that counts nothing: `tollgate explain` runs the live Check against it, so an
 * explanation shows what admission would say (and with which keys) without using a rate-limit
 * window or reserving a token. It reads the counters as they stand (`CounterReader`: the
 * memory or Redis store, or a running sidecar's `GET /counters`) and answers `admit` by the same rule the
 * stores apply (store.ts): every window needs room and every budget `max(1, minAmount)`, or
 * nothing is taken; the answer reads as if the request had been admitted.
 */
import type { BudgetRef } from '../domain/reservation.js';
import {
  refusalOf,
  wholeTokens,
  type AdmitRequest,
  type AdmitResult,
  type BudgetState,
  type CounterReader,
  type SettleResult,
  type Store,
  type WindowCount,
  type WindowState,
} from './store.js';

/** One admission as the peek store saw it: what was asked, what stood, what it answered. */
export interface PeekedAdmission {
  readonly request: AdmitRequest;
  /** Per window: the count before this request; undefined when it could not be read. */
  readonly windows: readonly (WindowCount | undefined)[];
  readonly budgets: readonly BudgetState[];
  readonly result: AdmitResult;
}

export class PeekStore implements Store {
  private readonly reader: CounterReader;
  /** Every admission asked of this store, in order (an explanation has at most one). */
  readonly admissions: PeekedAdmission[] = [];
  /**
   * Why the counters could not be read, when they could not: the Check turns it into a 503
   * (as it would a store outage), but an explanation is then of the reader, not the request.
   */
  readFailure: unknown;

  constructor(reader: CounterReader) {
    this.reader = reader;
  }

  async admit(request: AdmitRequest, now: number): Promise<AdmitResult> {
    let counters: Awaited<ReturnType<PeekStore['read']>>;
    try {
      counters = await this.read(request, now);
    } catch (err) {
      this.readFailure = err;
      throw err;
    }
    const { windows, budgets } = counters;
    const pending = new Map<string, number>();
    const fullWindow = request.windows.findIndex((hit, i) => {
      const before = pending.get(hit.key) ?? 0;
      pending.set(hit.key, before + 1);
      return (windows[i]?.count ?? 0) + before >= hit.limit;
    });
    const room = request.budgets.map((item, i) => item.limit - (budgets[i]?.used ?? 0) - (budgets[i]?.reserved ?? 0));
    const fullBudget = request.budgets.findIndex(
      (item, i) => (room[i] ?? 0) < Math.max(1, wholeTokens(item.minAmount)),
    );
    const refusedBy = refusalOf(fullWindow, fullBudget);
    // As the stores answer: each window after the whole request's hits (none when refused).
    const hits = new Map<string, number>();
    if (refusedBy === undefined) for (const w of request.windows) hits.set(w.key, (hits.get(w.key) ?? 0) + 1);
    const windowStates = request.windows.map((w, i): WindowState => {
      const count = (windows[i]?.count ?? 0) + (hits.get(w.key) ?? 0);
      return { limit: w.limit, remaining: Math.max(0, w.limit - count), resetMs: windows[i]?.resetMs ?? w.windowMs };
    });
    const reserved = request.budgets.map((item, i) =>
      refusedBy === undefined ? Math.min(wholeTokens(item.amount), room[i] ?? 0) : 0,
    );
    const remaining = request.budgets.map((_, i) => Math.max(0, (room[i] ?? 0) - (reserved[i] ?? 0)));
    const result: AdmitResult =
      refusedBy === undefined
        ? { allowed: true, windows: windowStates, reserved, remaining }
        : { allowed: false, windows: windowStates, reserved, remaining, refusedBy };
    this.admissions.push({ request, windows, budgets, result });
    return result;
  }

  /** The counters before this request: in one read when the reader can, else key by key. */
  private async read(
    request: AdmitRequest,
    now: number,
  ): Promise<{ windows: readonly (WindowCount | undefined)[]; budgets: readonly BudgetState[] }> {
    const { reader } = this;
    const windowKeys = request.windows.map((w) => w.key);
    const budgetKeys = request.budgets.map((b) => b.key);
    if (reader.readMany !== undefined) {
      if (windowKeys.length === 0 && budgetKeys.length === 0) return { windows: [], budgets: [] };
      return reader.readMany(windowKeys, budgetKeys, now);
    }
    const readWindow = reader.readWindow?.bind(reader);
    const windows = readWindow
      ? await Promise.all(windowKeys.map((key) => readWindow(key, now)))
      : windowKeys.map(() => undefined);
    const budgets = await Promise.all(budgetKeys.map((key) => reader.readBudget(key, now)));
    return { windows, budgets };
  }

  settle(items: readonly BudgetRef[]): Promise<SettleResult> {
    return Promise.resolve({ used: items.map(() => 0) });
  }

  release(): Promise<void> {
    return Promise.resolve();
  }

  readBudget(key: string, now: number): Promise<BudgetState> {
    return this.reader.readBudget(key, now);
  }

  /** The reader's window count, when it can read windows (a sidecar's `/budget` cannot). */
  readWindow(key: string, now: number): Promise<WindowCount> {
    return this.reader.readWindow?.(key, now) ?? Promise.resolve({ count: 0 });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
