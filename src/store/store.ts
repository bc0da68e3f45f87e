/**
 * The counter store behind request rate limits and token budgets. An admission is ONE call,
 * `admit`, that hits every rate-limit window and reserves in every token budget of a request at
 * once: one Lua script (one round trip) in Redis, one synchronous step in memory, however many
 * limits and budgets apply (DESIGN 1.7). A settlement is one more call.
 *
 * All or nothing. The request is admitted only when every window has room AND every budget has
 * enough room (below); then it takes one from each window and reserves in each budget.
 * Otherwise it takes and reserves nothing: a request refused by a budget uses no rate-limit
 * window, and one refused by a rate limit holds no tokens. The refusal names the first full
 * window, else the first budget without enough room, so a request that is both rate limited and
 * out of budget reads as rate limited.
 *
 * Time. Callers pass `now` (epoch ms) so the in-memory store can run on a fake clock. In
 * Redis, windows need no wall clock at all: a window's key gets PEXPIRE at its first hit and
 * Redis's own expiry ends it, so replicas with skewed clocks still agree. Reservation expiry
 * and budget key expiry use the caller's `now`: reservations live for minutes, so NTP-level
 * skew between replicas does not matter there.
 *
 * Budget semantics (admit / settle / release):
 * - A budget's room is `limit - used - reserved`, where `reserved` leaves out what the same
 *   reservation id already holds (a retried admission replaces its amount).
 * - A budget admits the request when its room is at least `max(1, minAmount)`: never on
 *   partial room below what the caller says the request needs (DESIGN 1.8). A caller that
 *   refuses what does not fit passes `minAmount = amount`; one that caps the request's output
 *   to fit passes the least it can still run with.
 * - In each budget an admitted request reserves `min(amount, room)`, so with a `minAmount`
 *   below `amount` it may get less than it asked for (at least `minAmount`), and the caller
 *   reads what it got from `reserved`. Since the check and the reservation are one atomic
 *   step, concurrent requests can never be admitted beyond the ledger.
 * - `settle` removes the reservation and adds each budget's actual amount (tokens, or
 *   micro-dollars in a cost budget: one call settles both kinds), which may exceed what was
 *   reserved; the overshoot of a budget is therefore bounded by the in-flight requests'
 *   (actual − reserved).
 * - Reservations expire on their own after `ttlMs` (a crashed replica must not leak them);
 *   expired ones are purged inside the admit and read operations. Settling an expired
 *   reservation still adds the actual tokens, so tokens are never lost.
 * - Budget keys expire at `expiresAtMs`, which the caller sets to the period's end plus a grace
 *   (`BUDGET_KEY_GRACE_MS` for hours and longer, budgets/planner.ts), so late settlements and
 *   reads still find the key.
 */
import type { BudgetRef } from '../domain/reservation.js';

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

/** One budget to reserve from; its key expires at `expiresAtMs` (its period's end plus a grace). */
export interface BudgetItem {
  readonly key: string;
  readonly limit: number;
  /** The most to reserve (the request's worst case); clamped to the room left. */
  readonly amount: number;
  /**
   * The least room the budget must have to admit the request (at least 1 either way):
   * `amount` to refuse what does not fit whole, less to accept a reservation cut to the room.
   */
  readonly minAmount: number;
  readonly expiresAtMs: number;
}


/** Everything one request asks of the store at admission. */
export interface AdmitRequest {
  /** Rate-limit windows to hit, one request each; a key named twice counts twice. */
  readonly windows: readonly WindowHit[];
  /** Token budgets to reserve from. */
  readonly budgets: readonly BudgetItem[];
  /** The reservation's id in every budget; a retried id replaces its earlier amount. */
  readonly reservationId: string;
  /** How long the reservation holds its tokens unless settled or released first. */
  readonly ttlMs: number;
}

/** The item that refused an admission, as an index into the request's windows or budgets. */
export interface Refusal {
  readonly kind: 'window' | 'budget';
  readonly index: number;
}

/** What refused: the first full window, else the first full budget (-1: none), as every store answers. */
export function refusalOf(fullWindow: number, fullBudget: number): Refusal | undefined {
  if (fullWindow !== -1) return { kind: 'window', index: fullWindow };
  if (fullBudget !== -1) return { kind: 'budget', index: fullBudget };
  return undefined;
}

export interface AdmitResult {
  readonly allowed: boolean;
  /** One entry per window, in order: after the hit when allowed, unchanged when refused. */
  readonly windows: readonly WindowState[];
  /** Tokens reserved per budget (all zero when refused). */
  readonly reserved: readonly number[];
  /** `limit - used - reserved` per budget after the call, never below zero. */
  readonly remaining: readonly number[];
  /** Only when refused: the first full window, else the first budget without enough room. */
  readonly refusedBy?: Refusal;
  readonly degraded?: Degraded;
}

export interface SettleResult {
  /** `used` per item after adding its actual amount. */
  readonly used: readonly number[];
  readonly degraded?: Degraded;
}

export interface BudgetState {
  readonly used: number;
  /** Sum of the live (unexpired) reservations. */
  readonly reserved: number;
}

export interface Store {
  /** All or nothing across windows and budgets (see above); no I/O when both lists are empty. */
  admit(request: AdmitRequest, now: number): Promise<AdmitResult>;
  /** Remove the reservation and add `amounts[i]` to `used` of `items[i]` (a missing amount is 0). */
  settle(
    items: readonly BudgetRef[],
    reservationId: string,
    amounts: readonly number[],
    now: number,
  ): Promise<SettleResult>;
  /** Remove the reservation without charging anything (the request never reached upstream). */
  release(items: readonly BudgetRef[], reservationId: string, now: number): Promise<void>;
  readBudget(key: string, now: number): Promise<BudgetState>;
  close(): Promise<void>;
}

/** A rate-limit window as it stands (`tollgate explain`): hits so far, and time to its reset. */
export interface WindowCount {
  readonly count: number;
  /** Milliseconds until the window ends; undefined when no window is open. */
  readonly resetMs?: number;
}

/** Read-only access to counters, for explanations: nothing here counts or reserves. */
export interface CounterReader {
  readBudget(key: string, now: number): Promise<BudgetState>;
  /** Absent where windows cannot be read (a sidecar's `/budget` shows only budgets). */
  readWindow?(key: string, now: number): Promise<WindowCount>;
  /**
   * Every window and budget of one admission in one read, where one call is cheaper than one
   * per key (a running sidecar's `GET /counters`); answers in the order asked.
   */
  readMany?(windowKeys: readonly string[], budgetKeys: readonly string[], now: number): Promise<CounterValues>;
}

/** Counters read together: one entry per key asked, in order. */
export interface CounterValues {
  readonly windows: readonly WindowCount[];
  readonly budgets: readonly BudgetState[];
}

/** A store's own counters, read as they stand (the memory and Redis stores, not the guard). */
export type CounterSource = Required<Pick<CounterReader, 'readBudget' | 'readWindow'>>;

/** How long a budget key outlives its period, so late settlements and reads still find it. */
export const BUDGET_KEY_GRACE_MS = 24 * 60 * 60 * 1000;

/** Counters are whole numbers; a caller's fractional or negative amount is normalised once. */
export function wholeTokens(n: number): number {
  return Number.isFinite(n) && n > 0 ? Math.ceil(n) : 0;
}
