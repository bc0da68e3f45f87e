/**
 * Token budgets at admission (`tokenBudgets:`). Every budget naming the caller's tenant, one
 * of its groups or the user applies, and the request must have room in all of them. This
 * planner decides what each reserves (the request's estimate: a quick prompt estimate + max
 * output, see metering/estimate.ts) and words the outcome; the admission stage (admit.ts)
 * reserves in the request's one all-or-nothing store call, together with its rate-limit
 * windows, so a request refused by a rate limit holds no tokens and one refused by a budget
 * uses no window. ext_proc settles the reservation to the real usage afterwards
 * (exchange/ledger.ts).
 *
 * Keys. One counter per budget and calendar period: `tb:<kind>:<subject>:<period id>`, e.g.
 * `tb:tenant:marketing:2026-11`. A new period is simply a new key, so a budget "resets" at
 * the calendar boundary of its time zone without any job running; the old key expires a day
 * after its period ends.
 *
 * Only metered endpoints (chat, completions, embeddings, responses) are counted; a model
 * list or a file upload passes without touching the store.
 */
import type { Config, TokenBudgetConfig } from '../config/schema.js';
import type { Reservation } from '../exchange/admissions.js';
import { endpointForPath } from '../metering/endpoint.js';
import { estimateReservation } from '../metering/estimate.js';
import { periodWindow, type PeriodWindow } from '../metering/period.js';
import type { BudgetItem } from '../store/store.js';
import { nothingToCount, type CounterPlan, type PlanAnswer, type Planner } from './admit.js';
import { deny } from './denials.js';
import { formatResetDuration, retryAfterSeconds } from './rate-headers.js';
import type { RequestContext, StageResult } from './stage.js';
import type { Identity } from './types.js';

/**
 * How long an unsettled reservation holds its tokens (`metering.reservationTtlSeconds`).
 * Longer than any stream Envoy keeps open (its idle timeout is 300 s), so a live request
 * never loses its reservation; short enough that a crashed replica's reservations come back
 * within minutes.
 */
export const DEFAULT_RESERVATION_TTL_SECONDS = 900;

export type BudgetKind = 'tenant' | 'group' | 'user';

/** Who a budget charges: exactly one of its `tenant`, `group` or `user` keys. */
export function budgetSubject(budget: TokenBudgetConfig): { kind: BudgetKind; subject: string } {
  if (budget.tenant !== undefined) return { kind: 'tenant', subject: budget.tenant };
  if (budget.group !== undefined) return { kind: 'group', subject: budget.group };
  return { kind: 'user', subject: budget.user ?? '' };
}

/** The name of a budget in logs, headers' messages and the budget endpoint: `tenant:marketing`. */
export function budgetName(budget: TokenBudgetConfig): string {
  const { kind, subject } = budgetSubject(budget);
  return `${kind}:${subject}`;
}

/** Store key of a budget's counter for one period; exported for the budget endpoint and tests. */
export function budgetKey(budget: TokenBudgetConfig, window: PeriodWindow): string {
  const { kind, subject } = budgetSubject(budget);
  // Encoded so a `:` in a subject cannot make two budgets share a key.
  return `tb:${kind}:${encodeURIComponent(subject)}:${window.id}`;
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
  readonly item: BudgetItem;
}

export class BudgetPlanner implements Planner {
  private readonly budgets: readonly TokenBudgetConfig[];
  private readonly defaultMaxOutputTokens: number;
  private readonly ttlMs: number;

  constructor(config: Pick<Config, 'tokenBudgets' | 'metering'>) {
    this.budgets = config.tokenBudgets;
    this.defaultMaxOutputTokens = config.metering.defaultMaxOutputTokens;
    this.ttlMs =
      (config.metering.reservationTtlSeconds ?? DEFAULT_RESERVATION_TTL_SECONDS) * 1000;
  }

  plan(ctx: RequestContext): CounterPlan {
    const { method, path } = ctx.request;
    if (!isMetered(method, path)) return nothingToCount();
    // Made for every metered request, budget or not. Cheap (bytes, no tokenizer): when a
    // response ends without usage, ext_proc counts the prompt with the tokenizer instead.
    const estimate = estimateReservation(path, ctx.body, ctx.model ?? '', this.defaultMaxOutputTokens);
    const applicable = applicableBudgets(this.budgets, ctx.identity);
    if (applicable.length === 0) return nothingToCount({ promptEstimate: estimate.prompt });

    const planned: Planned[] = applicable.map((budget) => {
      const window = periodWindow(budget.period, budget.timeZone, ctx.now);
      return {
        budget,
        window,
        item: {
          key: budgetKey(budget, window),
          limit: budget.maxTokens,
          amount: estimate.total,
          // Any room left admits, the reservation clamped to it.
          minAmount: 1,
          expiresAtMs: window.endMs,
        },
      };
    });
    return {
      windows: [],
      budgets: planned.map((p) => p.item),
      reservationTtlMs: this.ttlMs,
      render: (answer) => render(planned, answer, estimate.prompt, ctx.now),
      unavailable: () => {
        // The guarded store throws only under `closed` (and an unguarded store on any failure);
        // `open` and `local` come back as answers.
        const message = 'The token budget store is unavailable. Please try again shortly.';
        return deny('store_unavailable', message, { headers: { 'retry-after': '1' } });
      },
    };
  }
}

function render(
  planned: readonly Planned[],
  answer: PlanAnswer,
  promptEstimate: number,
  now: number,
): StageResult {
  if (answer.refusedBy !== undefined) return { deny: exhausted(planned, answer, now) };
  const reservation: Reservation = {
    id: answer.reservationId,
    budgets: planned.map((p) => ({ key: p.item.key, expiresAtMs: p.item.expiresAtMs })),
    names: planned.map((p) => budgetName(p.budget)),
    reserved: answer.reserved,
  };
  // With `open` nothing was counted, so there is no truthful remaining count to advertise.
  const tightest = answer.degraded === 'open' ? undefined : tightestOf(planned, answer, now);
  return {
    ok: {
      reservation,
      promptEstimate,
      ...(tightest !== undefined ? { responseHeaders: tightest } : {}),
      metadata: {
        budgets: reservation.names.join(','),
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
 * 429 `insufficient_quota`. `x-should-retry: false` because the OpenAI SDKs otherwise honour
 * `retry-after` on a 429, and that may be weeks away.
 */
function exhausted(planned: readonly Planned[], answer: PlanAnswer, now: number) {
  const i = answer.refusedBy?.kind === 'budget' ? answer.refusedBy.index : -1;
  const p = planned[i];
  if (p === undefined) throw new Error('store denied an unknown budget');
  const resetMs = p.window.endMs - now;
  const name = budgetName(p.budget);
  return deny(
    'budget_exhausted',
    `You exceeded your token budget ${name} for this ${p.budget.period} ` +
      `(${p.budget.maxTokens} tokens). It resets in ${formatResetDuration(resetMs)}.`,
    {
      headers: {
        'retry-after': retryAfterSeconds(resetMs),
        'x-should-retry': 'false',
        ...tokenHeaders(p.budget.maxTokens, answer.remaining[i] ?? 0, resetMs),
      },
      rule: name,
    },
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
  return tokenHeaders(best.p.budget.maxTokens, best.remaining, best.p.window.endMs - now);
}
