/**
 * Handoffs with only windows or only budgets, as many store tests ask for one of the two.
 * Both go through `Store.admit`, the store's one admission call.
 */
import type { AdmitResult, BudgetItem, Store, WindowHit } from '../../../src/store/store.js';

/** Windows only (a request under rate limits and no budget). */
export function hitWindows(
  store: Store,
  windows: readonly WindowHit[],
  now: number,
): Promise<AdmitResult> {
  return store.admit({ windows, budgets: [], reservationId: 'no-budgets', ttlMs: 1 }, now);
}

/** Budgets only (a request under token budgets and no rate limit). */
export function reserve(
  store: Store,
  budgets: readonly BudgetItem[],
  reservationId: string,
  ttlMs: number,
  now: number,
): Promise<AdmitResult> {
  return store.admit({ windows: [], budgets, reservationId, ttlMs }, now);
}
