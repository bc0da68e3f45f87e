/**
 * Token budgets at admission (`tokenBudgets:`). Every budget naming the caller's tenant, one
 * of its groups or the user applies, and the request must have room in all of them. This
 * planner decides what each reserves (the request's worst case: a quick prompt estimate + max
 * output, see metering/estimate.ts; refused or capped when it does not fit, see fit.ts)
 * and words the outcome; the admission stage (admit.ts)
 * reserves in the request's one all-or-nothing store call, together with its rate-limit
 * windows, so a request refused by a rate limit holds no tokens and one refused by a budget
 * uses no window. ext_proc settles the reservation to the real usage afterwards
 * (budgets/ledger.ts).
 *
 * Keys. One counter per budget and calendar period: `tb:<kind>:<subject>:<period id>`, e.g.
 * `tb:tenant:marketing:2026-11`, and for a budget in money (`maxCost`) one more in whole
 * micro-dollars, `tc:<kind>:<subject>:<period id>`. A new period is simply a new key, so a budget "resets" at
 * the calendar boundary of its time zone without any job running; the old key expires a day
 * after its period ends.
 *
 * Cost budgets reserve the worst case priced (metering/pricing.ts, budgets/fit.ts) and settle
 * the usage priced at the same price, which travels in the hand-off. A request charged to a
 * cost budget whose model has no price (and no `pricing.unknownModel` fallback) is refused
 * before anything is counted: 403 `model_not_priced`.
 *
 * Only metered endpoints (chat, completions, embeddings, responses) are counted; a model
 * list or a file upload passes without touching the store.
 */
import type { Config, FitToBudget, TokenBudgetConfig } from '../config/schema.js';
import type { BudgetUnit, Reservation } from '../domain/reservation.js';
import { endpointForPath } from '../request/endpoint.js';
import { estimateReservation, type Reservation as Estimate } from '../metering/estimate.js';
import { periodWindow, type PeriodWindow } from './period.js';
import { BUDGET_KEY_GRACE_MS, type BudgetItem } from '../store/store.js';
import {
  nothingToCount,
  type CounterPlan,
  type PlanAnswer,
  type PlanInput,
  type Planner,
  type PlanVerdict,
} from '../limits/admit.js';
import { DEFAULT_FIT_TO_BUDGET, fitAmounts, fitCost, MIN_CAPPED_OUTPUT, outputLimitToWrite, type FitAmounts } from './fit.js';
import { formatUsd, outputTokensWithin, type ModelPrice } from '../metering/pricing.js';
import { pricingFromConfig, type Pricing } from '../metering/prices.js';
import { deny } from '../domain/denials.js';
import { DEFAULT_RESERVATION_TTL_SECONDS } from '../limits/admit.js';
import { formatResetDuration, retryAfterSeconds } from '../limits/rate-headers.js';
import type { Identity } from '../domain/identity.js';

export { DEFAULT_RESERVATION_TTL_SECONDS } from '../limits/admit.js';

export type BudgetKind = 'tenant' | 'group' | 'user';

/** Who a budget charges: exactly one of its `tenant`, `group` or `user` keys. */
export function budgetSubject(budget: TokenBudgetConfig): { kind: BudgetKind; subject: string } {
  if (budget.tenant !== undefined) return { kind: 'tenant', subject: budget.tenant };
  if (budget.group !== undefined) return { kind: 'group', subject: budget.group };
  return { kind: 'user', subject: budget.user ?? '' };
}

/**
 * The name of a budget in logs, headers' messages and the budget endpoint: `tenant:marketing`;
 * a tokens-per-minute limit, which a subject may have besides its budget: `tenant:marketing/minute`.
 */
export function budgetName(budget: TokenBudgetConfig): string {
  const { kind, subject } = budgetSubject(budget);
  return `${kind}:${subject}${budget.period === 'minute' ? '/minute' : ''}`;
}

/**
 * Store key of a budget's counter for one period (`tb:` tokens, `tc:` micro-dollars); exported
 * for the budget endpoint and tests.
 */
export function budgetKey(budget: TokenBudgetConfig, window: PeriodWindow, unit: BudgetUnit = 'tokens'): string {
  const { kind, subject } = budgetSubject(budget);
  // Encoded so a `:` in a subject cannot make two budgets share a key.
  return `${unit === 'usd' ? 'tc' : 'tb'}:${kind}:${encodeURIComponent(subject)}:${window.id}`;
}

/** The counters of a budget: tokens, micro-dollars, or both; each with its limit. */
export function budgetLimits(budget: TokenBudgetConfig): { unit: BudgetUnit; limit: number }[] {
  return [
    ...(budget.maxTokens !== undefined ? [{ unit: 'tokens' as const, limit: budget.maxTokens }] : []),
    ...(budget.maxCostMicros !== undefined ? [{ unit: 'usd' as const, limit: budget.maxCostMicros }] : []),
  ];
}

/**
 * How long a budget's key outlives its period, so late settlements and reads still find it:
 * a day, but only a minute for a token rate limit, whose keys would otherwise pile up (one a
 * minute per subject).
 */
function keyGraceMs(period: TokenBudgetConfig['period']): number {
  return period === 'minute' ? 60_000 : BUDGET_KEY_GRACE_MS;
}

/** The request's `service_tier` (`flex`, `priority`, …): it picks the tier's prices. */
function serviceTier(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const tier = (body as Record<string, unknown>)['service_tier'];
  return typeof tier === 'string' ? tier : undefined;
}

/** The budgets a caller is charged to: its tenant's, each of its groups', and its user's. */
export function applicableBudgets(
  budgets: readonly TokenBudgetConfig[],
  identity: Identity,
): TokenBudgetConfig[] {
  return budgets.filter(
    (b) =>
      (b.tenant !== undefined && b.tenant === identity.tenant) ||
      (b.group !== undefined && identity.groups.includes(b.group)) ||
      (b.user !== undefined && b.user === identity.user),
  );
}

/**
 * Requests that generate tokens. GET on the same paths (listing stored completions, reading
 * a response) costs nothing.
 */
export function isMetered(method: string, path: string): boolean {
  return method.toUpperCase() === 'POST' && endpointForPath(path) !== 'other';
}

interface Planned {
  readonly budget: TokenBudgetConfig;
  readonly window: PeriodWindow;
  readonly unit: BudgetUnit;
  readonly item: BudgetItem;
}

export class BudgetPlanner implements Planner {
  private readonly budgets: readonly TokenBudgetConfig[];
  private readonly defaultMaxOutputTokens: number;
  private readonly fit: FitToBudget;
  private readonly ttlMs: number;
  private readonly pricing: Pricing;

  constructor(config: Pick<Config, 'tokenBudgets' | 'metering' | 'pricing'>) {
    this.budgets = config.tokenBudgets;
    this.pricing = pricingFromConfig(config.pricing);
    this.defaultMaxOutputTokens = config.metering.defaultMaxOutputTokens;
    this.fit = config.metering.fitToBudget ?? DEFAULT_FIT_TO_BUDGET;
    this.ttlMs =
      (config.metering.reservationTtlSeconds ?? DEFAULT_RESERVATION_TTL_SECONDS) * 1000;
  }

  plan(ctx: PlanInput): CounterPlan {
    const { method, path } = ctx.request;
    if (!isMetered(method, path)) return nothingToCount();
    // Made for every metered request, budget or not. Cheap (bytes, no tokenizer): when a
    // response ends without usage, ext_proc counts the prompt with the tokenizer instead.
    const estimate = estimateReservation(path, ctx.body, ctx.model ?? '', this.defaultMaxOutputTokens);
    // Priced whenever the model has a price, so usage lines and metrics show cost too.
    const price = this.pricing.price(ctx.model ?? '', serviceTier(ctx.body));
    const grant = { promptEstimate: estimate.prompt, ...(price !== undefined ? { price } : {}) };
    const applicable = applicableBudgets(this.budgets, ctx.identity);
    if (applicable.length === 0) return nothingToCount(grant);
    const costBudget = applicable.find((b) => b.maxCostMicros !== undefined);
    if (costBudget !== undefined && price === undefined) {
      return { ...nothingToCount(), refuse: notPriced(ctx.model, costBudget) };
    }

    const amounts: Record<BudgetUnit, FitAmounts | undefined> = {
      tokens: fitAmounts(estimate, this.fit),
      usd: price !== undefined ? fitCost(estimate, this.fit, price) : undefined,
    };
    const fit = { mode: this.fit, estimate, amounts, price };
    const planned: Planned[] = applicable.flatMap((budget) => {
      const window = periodWindow(budget.period, budget.timeZone, ctx.now);
      return budgetLimits(budget).map(({ unit, limit }) => {
        const { amount, minAmount } = amounts[unit] ?? { amount: 0, minAmount: 0 };
        const expiresAtMs = window.endMs + keyGraceMs(budget.period);
        const item = { key: budgetKey(budget, window, unit), limit, amount, minAmount, expiresAtMs };
        return { budget, window, unit, item };
      });
    });
    return {
      windows: [],
      budgets: planned.map((p) => p.item),
      reservationTtlMs: this.ttlMs,
      render: (answer) => render(planned, answer, fit, ctx.now, grant),
      unavailable: () => {
        // The guarded store throws only under `closed` (and an unguarded store on any failure);
        // `open` and `local` come back as answers.
        const message = 'The token budget store is unavailable. Please try again shortly.';
        return deny('store_unavailable', message, { headers: { 'retry-after': '1' } });
      },
    };
  }
}

/** How the request was fitted to its budgets, for the verdict. */
interface Fit {
  readonly mode: FitToBudget;
  readonly estimate: Estimate;
  /** What each kind of counter was asked for: the worst case, and the least room needed. */
  readonly amounts: Readonly<Record<BudgetUnit, FitAmounts | undefined>>;
  /** The model's price, when it has one (always, when a cost budget applies). */
  readonly price: ModelPrice | undefined;
}

function render(
  planned: readonly Planned[],
  answer: PlanAnswer,
  fit: Fit,
  now: number,
  grant: { promptEstimate: number; price?: ModelPrice },
): PlanVerdict {
  if (answer.refusedBy !== undefined) return { deny: exhausted(planned, answer, fit, now) };
  const { prompt } = fit.estimate;
  // The output each reservation leaves room for: tokens after the prompt, or what its
  // micro-dollars buy after the prompt.
  const outputRooms = planned.map((p, i) => {
    const r = answer.reserved[i] ?? 0;
    return p.unit === 'usd' && fit.price !== undefined ? outputTokensWithin(fit.price, prompt, r) : r - prompt;
  });
  const outputLimit = outputLimitToWrite(fit.estimate, outputRooms, answer.degraded);
  const reservation: Reservation = {
    id: answer.reservationId,
    budgets: planned.map((p) => ({ key: p.item.key, expiresAtMs: p.item.expiresAtMs })),
    names: planned.map((p) => budgetName(p.budget)),
    reserved: answer.reserved,
    ...(planned.some((p) => p.unit === 'usd') ? { units: planned.map((p) => p.unit) } : {}),
  };
  // With `open` nothing was counted, so there is no truthful remaining count to advertise.
  const tightest = answer.degraded === 'open' ? undefined : tightestOf(planned, answer, now);
  return {
    ok: {
      ...grant,
      reservation,
      ...(outputLimit !== undefined ? { outputLimit } : {}),
      ...(tightest !== undefined ? { responseHeaders: tightest } : {}),
      metadata: {
        budgets: [...new Set(reservation.names)].join(','),
        ...(answer.degraded !== undefined ? { budgetDegraded: answer.degraded } : {}),
      },
    },
  };
}

function tokenHeaders(limit: number, remaining: number, resetMs: number): Record<string, string> {
  return {
    'x-ratelimit-limit-tokens': String(limit),
    'x-ratelimit-remaining-tokens': String(remaining),
    'x-ratelimit-reset-tokens': formatResetDuration(resetMs),
  };
}

/**
 * 429 `insufficient_quota`, for a spent budget or one whose room is too small for this
 * request. `x-should-retry: false` because the OpenAI SDKs otherwise honour `retry-after` on a
 * 429, and that may be weeks away.
 */
function exhausted(planned: readonly Planned[], answer: PlanAnswer, fit: Fit, now: number) {
  const i = answer.refusedBy?.kind === 'budget' ? answer.refusedBy.index : -1;
  const p = planned[i];
  if (p === undefined) throw new Error('store denied an unknown budget');
  const resetMs = p.window.endMs - now;
  const left = answer.remaining[i] ?? 0;
  const perMinute = p.budget.period === 'minute';
  const amount = p.unit === 'usd' ? usd(p.item.limit) : `${p.item.limit} tokens`;
  // The message says "per minute" in words; the name (`…/minute`) is for logs and the endpoint.
  const { kind, subject } = budgetSubject(p.budget);
  const budget = perMinute
    ? `${p.unit === 'usd' ? 'cost' : 'token'} rate limit ${kind}:${subject} (${amount} per minute)`
    : `${p.unit === 'usd' ? 'cost' : 'token'} budget ${kind}:${subject} for this ${p.budget.period} (${amount})`;
  const resetIn = formatResetDuration(resetMs);
  // A rate limit (tokens per minute) is a 429 the SDKs should retry after `retry-after`, unless
  // the request could never fit; a budget's reset may be weeks away.
  const never = p.item.minAmount > p.item.limit;
  return deny(
    perMinute ? 'token_rate_limited' : 'budget_exhausted',
    left <= 0
      ? `You exceeded your ${budget}. It resets in ${resetIn}.`
      : doesNotFit(fit, p, left, budget, resetIn),
    {
      headers: {
        'retry-after': retryAfterSeconds(resetMs),
        ...(!perMinute || never ? { 'x-should-retry': 'false' } : {}),
        // OpenAI's headers count tokens; a cost budget's room is in the message instead.
        ...(p.unit === 'tokens' ? tokenHeaders(p.item.limit, left, resetMs) : {}),
      },
      rule: budgetName(p.budget),
    },
  );
}

/** Micro-dollars for people: `$500.00`, `$0.0123`. */
function usd(micros: number): string {
  return `$${formatUsd(micros)}`;
}

/**
 * 403 `model_not_priced`: the request is charged to a budget in USD, but nothing prices its
 * model, so it cannot be counted. The operator prices it (`pricing.models`) or sets a fallback.
 */
function notPriced(model: string | undefined, budget: TokenBudgetConfig) {
  const what = model === undefined || model === '' ? 'This request names no model' : `The model ${JSON.stringify(model)} has no price`;
  return deny(
    'model_not_priced',
    `${what} in this gateway's price table, and it is charged to the cost budget ` +
      `${budgetName(budget)}, which counts US dollars. Use a priced model, or ask your ` +
      'administrator to add its price (pricing.models).',
    { rule: budgetName(budget) },
  );
}

/** Least remaining after this reservation wins; on a tie, the one that resets later. */
function tightestOf(
  planned: readonly Planned[],
  answer: PlanAnswer,
  now: number,
): Record<string, string> | undefined {
  let best: { p: Planned; remaining: number } | undefined;
  for (const [i, p] of planned.entries()) {
    if (p.unit !== 'tokens') continue;
    const remaining = answer.remaining[i] ?? 0;
    if (
      best === undefined ||
      remaining < best.remaining ||
      (remaining === best.remaining && p.window.endMs > best.p.window.endMs)
    ) {
      best = { p, remaining };
    }
  }
  if (best === undefined) return undefined;
  return tokenHeaders(best.p.item.limit, best.remaining, best.p.window.endMs - now);
}

/** The refusal of a request too large for the room a budget has left. */
function doesNotFit(fit: Fit, p: Planned, left: number, budget: string, resetIn: string): string {
  const { estimate } = fit;
  const minAmount = fit.amounts[p.unit]?.minAmount ?? 0;
  const [need, room] = p.unit === 'usd' ? [usd(minAmount), usd(left)] : [`${minAmount} tokens`, String(left)];
  if (fit.mode === 'cap') {
    const least = Math.min(MIN_CAPPED_OUTPUT, estimate.outputLimit);
    return (
      `This request needs at least ${need} (its prompt and ${least} output ` +
      `tokens per choice), which does not fit the ${room} left in your ${budget}. ` +
      `It resets in ${resetIn}.`
    );
  }
  const fewer = estimate.generations > 1 ? 'output tokens or choices (n)' : 'output tokens';
  return (
    `This request's worst case of ${need} does not fit the ${room} left in your ` +
    `${budget}. Ask for fewer ${fewer}; ${p.budget.period === 'minute' ? 'it' : 'the budget'} resets in ${resetIn}.`
  );
}
