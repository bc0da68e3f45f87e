/**
 * The counter store behind request rate limits and token budgets. Every method that takes a
 * list works on all of its keys at once, in one round trip to Redis, however many limits or
 * budgets apply to the request (DESIGN 1.7).
 *
 * Time. Callers pass `now` (epoch ms) so the in-memory store can run on a fake clock. In
 * Redis, windows need no wall clock at all: a window's key gets PEXPIRE at its first hit and
 * Redis's own expiry ends it, so replicas with skewed clocks still agree. Reservation expiry
 * and budget key expiry use the caller's `now`: reservations live for minutes, so NTP-level
 * skew between replicas does not matter there.
 *
 * Budget semantics (reserve / settle / release):
 * - A request is admitted when `used + reserved < limit` in EVERY budget it is charged to.
 * - In each budget it reserves `min(amount, limit - used - reserved)`. The clamp means a large
 *   estimate never refuses a request that could still fit, and since the check and the
 *   reservation are one atomic step, concurrent requests can never be admitted beyond the
 *   ledger.
 * - `settle` removes the reservation and adds the actual tokens, which may exceed what was
 *   reserved; the overshoot of a budget is therefore bounded by the in-flight requests'
 *   (actual − reserved).
 * - Reservations expire on their own after `ttlMs` (a crashed replica must not leak them);
 *   expired ones are purged inside the reserve and read operations. Settling an expired
 *   reservation still adds the actual tokens, so tokens are never lost.
 * - Budget keys expire `BUDGET_KEY_GRACE_MS` after their period end (`expiresAtMs`).
 */

/** One fixed window to hit: it starts at the bucket's first hit and lasts `windowMs`. */
export interface WindowHit {
  readonly key: string;
  readonly limit: number;
  readonly windowMs: number;
}

/** A window's state after the call (after the hit when allowed; unchanged when denied). */
export interface WindowState {
  readonly limit: number;
  readonly remaining: number;
  /** Milliseconds until the window ends and its count starts from zero. */
  readonly resetMs: number;
}

/**
 * Set by the guarded store when Redis could not be used: `open` means nothing was counted,
 * `local` means only this replica's in-memory counters were used.
 */
export type Degraded = 'open' | 'local';

export interface HitResult {
  readonly allowed: boolean;
  /** One entry per hit, in order. */
  readonly results: readonly WindowState[];
  /** Index of the first hit that had no room (only when denied). */
  readonly deniedIndex?: number;
  readonly degraded?: Degraded;
}

/** One budget to reserve from; `expiresAtMs` is the end of the budget's current period. */
export interface BudgetItem {
  readonly key: string;
  readonly limit: number;
  /** The estimate to reserve; clamped to the room left. */
  readonly amount: number;
  readonly expiresAtMs: number;
}

/** A budget named again at settle / release time; `expiresAtMs` as given to `reserve`. */
export interface BudgetRef {
  readonly key: string;
  readonly expiresAtMs: number;
}

export interface ReserveResult {
  readonly allowed: boolean;
  /** Tokens reserved per item (all zero when denied). */
  readonly reserved: readonly number[];
  /** `limit - used - reserved` per item after the call, never below zero. */
  readonly remaining: readonly number[];
  readonly deniedIndex?: number;
  readonly degraded?: Degraded;
}

export interface SettleResult {
  /** `used` per item after adding the actual tokens. */
  readonly used: readonly number[];
  readonly degraded?: Degraded;
}

export interface BudgetState {
  readonly used: number;
  /** Sum of the live (unexpired) reservations. */
  readonly reserved: number;
}

export interface Store {
  /** All-or-nothing: consume 1 from every window only if all have room, else consume nothing. */
  hitWindows(hits: readonly WindowHit[], now: number): Promise<HitResult>;
  /** All-or-nothing: reserve in every budget only if all have room (see the semantics above). */
  reserve(
    items: readonly BudgetItem[],
    reservationId: string,
    ttlMs: number,
    now: number,
  ): Promise<ReserveResult>;
  /** Remove the reservation and add `actualTokens` to `used`, in every item. */
  settle(
    items: readonly BudgetRef[],
    reservationId: string,
    actualTokens: number,
    now: number,
  ): Promise<SettleResult>;
  /** Remove the reservation without charging anything (the request never reached upstream). */
  release(items: readonly BudgetRef[], reservationId: string, now: number): Promise<void>;
  readBudget(key: string, now: number): Promise<BudgetState>;
  close(): Promise<void>;
}

/** How long a budget key outlives its period, so late settlements and reads still find it. */
export const BUDGET_KEY_GRACE_MS = 24 * 60 * 60 * 1000;

/** Counters are whole numbers; a caller's fractional or negative amount is normalised once. */
export function wholeTokens(n: number): number {
  return Number.isFinite(n) && n > 0 ? Math.ceil(n) : 0;
}
