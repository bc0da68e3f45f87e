/**
 * No single request overshoots a budget (DESIGN 1.8): a request whose worst case does not fit
 * the room left is refused or capped to fit, never admitted on partial room.
 *
 * The worst case is the admission estimate (metering/estimate.ts): the quick prompt estimate
 * plus the output limit × the number of generations (`n`, or `max(n, best_of)` for legacy
 * completions), where a request without a limit gets `metering.defaultMaxOutputTokens`.
 *
 * - `refuse` (the default): every budget must have room for the whole worst case
 *   (`minAmount = amount`), else 429 budget_exhausted.
 * - `cap`: every budget must have room for the prompt and MIN_CAPPED_OUTPUT per generation
 *   (or the request's own, smaller limit); each reserves what it can up to the worst case, and
 *   the output limit is lowered until prompt + generations × limit fits the smallest
 *   reservation.
 *
 * A limit is only a bound when the upstream sees it, so whenever budgets apply and the
 * request's own limit is missing or too large, the admitted limit is written into the request
 * body by ext_proc (response/exchange.ts) before it goes upstream.
 *
 * Both are decided in the admission's one store call (`minAmount` in the BudgetItem), with no
 * extra round trip and no tokenizer.
 */
import type { FitToBudget } from '../config/schema.js';
import type { Reservation } from '../metering/estimate.js';
import type { Degraded } from '../store/store.js';
import { worstCaseCost, type ModelPrice } from '../metering/pricing.js';

/** `metering.fitToBudget` when the file does not say. */
export const DEFAULT_FIT_TO_BUDGET: FitToBudget = 'refuse';

/**
 * The least output per generation a capped request is admitted with: below this a reply is
 * hardly useful, so a request that cannot get it is refused instead (429).
 */
export const MIN_CAPPED_OUTPUT = 16;

/** What every budget of a request is asked for: at most `amount`, at least `minAmount`. */
export interface FitAmounts {
  readonly amount: number;
  readonly minAmount: number;
}

export function fitAmounts(estimate: Reservation, mode: FitToBudget): FitAmounts {
  if (mode === 'refuse') return { amount: estimate.total, minAmount: estimate.total };
  const least = Math.min(MIN_CAPPED_OUTPUT, estimate.outputLimit);
  return { amount: estimate.total, minAmount: estimate.prompt + estimate.generations * least };
}

/**
 * The same in micro-dollars, for a cost budget: the worst case priced with every prompt token
 * uncached and every output token at the dearer of output and reasoning.
 */
export function fitCost(estimate: Reservation, mode: FitToBudget, price: ModelPrice): FitAmounts {
  const amount = worstCaseCost(price, estimate.prompt, estimate.maxOutput);
  if (mode === 'refuse') return { amount, minAmount: amount };
  const least = Math.min(MIN_CAPPED_OUTPUT, estimate.outputLimit);
  return { amount, minAmount: worstCaseCost(price, estimate.prompt, estimate.generations * least) };
}

/**
 * The output limit per generation the upstream must be told, from the output each budget's
 * reservation leaves room for (`outputRooms`: a token budget's reservation minus the prompt,
 * or what a cost budget's micro-dollars buy after the prompt): the largest `c` with
 * `generations × c` within every room, never above the request's own limit. Undefined when
 * nothing needs writing: no output (embeddings), or the request's own limit fits. Under the
 * `open` store policy nothing was reserved, so only a missing limit is written (the default).
 */
export function outputLimitToWrite(
  estimate: Reservation,
  outputRooms: readonly number[],
  degraded: Degraded | undefined,
): number | undefined {
  const { generations } = estimate;
  if (generations === 0) return undefined;
  let limit = estimate.outputLimit;
  if (degraded !== 'open') {
    for (const room of outputRooms) limit = Math.min(limit, Math.floor(room / generations));
  }
  limit = Math.max(0, limit);
  return limit < estimate.outputLimit || !estimate.limitGiven ? limit : undefined;
}
