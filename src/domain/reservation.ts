/**
 * A budget reservation: what admission holds in the store for one request until ext_proc
 * settles it to the real usage (budgets/ledger.ts) or it expires.
 */

/** A budget counter named again at settle / release time: its store key and period end. */
export interface BudgetRef {
  readonly key: string;
  readonly expiresAtMs: number;
}

/** Tokens reserved at admission in every applicable budget. */
export interface Reservation {
  /** Reservation id in the store (equals the admission id). */
  readonly id: string;
  /** The budgets it was reserved in (store keys with their period end). */
  readonly budgets: readonly BudgetRef[];
  /** Human names of those budgets for logs, e.g. `tenant:marketing`. */
  readonly names: readonly string[];
  /** Tokens reserved in each budget (the worst case, or less when capped), same order as `budgets`. */
  readonly reserved: readonly number[];
}
