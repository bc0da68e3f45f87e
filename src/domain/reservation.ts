/**
 * A budget reservation: what admission holds in the store for one request until ext_proc
 * settles it to the real usage (budgets/ledger.ts) or it expires.
 */

/**
 * A budget counter named again at settle / release time: its store key and when the key
 * expires (its period's end plus a grace, budgets/planner.ts).
 */
export interface BudgetRef {
  readonly key: string;
  readonly expiresAtMs: number;
}

/**
 * What a budget counter counts: `tokens`, or `usd` in whole micro-dollars (a `maxCost` budget).
 * A budget with both limits has one counter of each.
 */
export type BudgetUnit = 'tokens' | 'usd';

/**
 * What a reservation's counter holds: a budget's tokens or micro-dollars, or `slot`, one
 * request in flight under a concurrency limit (`rateLimits[].maxConcurrent`). A slot is
 * stored as a reservation of 1 in a counter of `maxConcurrent` that is never charged: it is
 * taken in the same admission, released or settled (to 0) with the budgets, and expires with
 * them after the reservation TTL.
 */
export type CounterUnit = BudgetUnit | 'slot';

/**
 * A model's prices as pico-dollars per token (USD per million tokens × 10⁶), integers; what a
 * request's usage is priced at (metering/pricing.ts).
 */
export interface TokenPrice {
  readonly input: number;
  /** Input tokens served from the prompt cache; absent = `input`. */
  readonly cachedInput?: number;
  readonly output: number;
  /** Reasoning tokens, when priced apart from other output; absent = `output`. */
  readonly reasoning?: number;
}

/**
 * Tokens (or micro-dollars) reserved at admission in every applicable budget, and the
 * concurrency slots the request holds.
 */
export interface Reservation {
  /** Reservation id in the store (equals the admission id). */
  readonly id: string;
  /** The budgets it was reserved in (store keys with their period end). */
  readonly budgets: readonly BudgetRef[];
  /** Human names of those budgets for logs, e.g. `tenant:marketing` (a slot: its limit's name). */
  readonly names: readonly string[];
  /**
   * Reserved in each budget (the worst case, or less when capped), same order as `budgets`:
   * tokens, or micro-dollars where `units` says `usd`.
   */
  readonly reserved: readonly number[];
  /** The unit of each counter; absent = all `tokens`. */
  readonly units?: readonly CounterUnit[];
}
