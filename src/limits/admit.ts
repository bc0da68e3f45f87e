/**
 * Admission: the one store call of a request (DESIGN 1.7). Rate limits and token budgets stay
 * separate planners — each decides what it needs counted and how to word the answer — but the
 * store counts all of it in ONE all-or-nothing call (one Lua script in Redis, one synchronous
 * step in memory), behind the same timeout, breaker and `onUnavailable` policy. So a request
 * costs one round trip however many limits and budgets apply, a request refused by a budget
 * uses no rate-limit window, and one refused by a rate limit reserves no tokens.
 */
import { randomUUID } from 'node:crypto';
import type { AdmitResult, BudgetItem, Degraded, Refusal, Store, WindowHit, WindowState } from '../store/store.js';
import type { Denial } from '../domain/decision.js';
import type { Identity } from '../domain/identity.js';
import type { Reservation, TokenPrice } from '../domain/reservation.js';
import type { InboundRequest } from '../domain/request.js';
import type { EndpointInfo } from '../request/endpoint.js';

/**
 * How long an unsettled reservation holds its tokens, or a concurrency slot its place
 * (`metering.reservationTtlSeconds`). Longer than any stream Envoy keeps open (its idle timeout
 * is 300 s), so a live request never loses its reservation; short enough that a crashed
 * replica's reservations come back within minutes.
 */
export const DEFAULT_RESERVATION_TTL_SECONDS = 900;

/** What a planner reads about an authenticated request. */
export interface PlanInput {
  readonly request: InboundRequest;
  readonly identity: Identity;
  /** The endpoint catalogue's entry for the request (request/endpoint.ts). */
  readonly endpoint: EndpointInfo;
  /** The JSON body's `model`, when it has a string one. */
  readonly model?: string;
  /** The parsed JSON body, when the body is JSON. */
  readonly body?: unknown;
  /** Admission time, epoch milliseconds. */
  readonly now: number;
  /** The request's hand-off id (a UUID), reused as its budget reservation's id. */
  readonly handoffId?: string;
}

/** What a plan adds to an admitted request. */
export interface PlanGrant {
  /** Headers for the downstream response (x-ratelimit-*). */
  readonly responseHeaders?: Readonly<Record<string, string>>;
  /** Extra JSON-able metadata for ext_authz dynamic metadata (access logs, ext_proc). */
  readonly metadata?: Readonly<Record<string, unknown>>;
  /**
   * Tokens reserved in the request's budgets, and the concurrency slots it holds; settled by
   * ext_proc. The grants' reservations are one (one id), their counters joined.
   */
  readonly reservation?: Reservation;
  /** Prompt tokens estimated for a metered request. */
  readonly promptEstimate?: number;
  /** Output limit per generation ext_proc must write into the request. */
  readonly outputLimit?: number;
  /** What the request's model costs, when priced: its usage is reported (and charged) in USD. */
  readonly price?: TokenPrice;
}

export type PlanVerdict = { readonly ok: PlanGrant } | { readonly deny: Denial };

/** A plan's share of the store's answer: its own windows and budgets, in its own order. */
export interface PlanAnswer {
  readonly windows: readonly WindowState[];
  readonly reserved: readonly number[];
  readonly remaining: readonly number[];
  /** Set only on the plan whose item refused the request; indexes into this plan's lists. */
  readonly refusedBy?: Refusal;
  readonly degraded?: Degraded;
  /** The id the plan's budgets were reserved under. */
  readonly reservationId: string;
}

/** What one planner wants counted for a request, and how it turns the answer into a verdict. */
export interface CounterPlan {
  readonly windows: readonly WindowHit[];
  readonly budgets: readonly BudgetItem[];
  /** Lifetime of the reservation; required when `budgets` is not empty. */
  readonly reservationTtlMs?: number;
  /**
   * Admitted: called on every plan and must grant. Refused: called only on the plan that
   * refused, and must deny.
   */
  render(answer: PlanAnswer): PlanVerdict;
  /** The store could not answer (closed policy, or an unguarded store that failed). */
  unavailable(): Denial;
  /**
   * Refused before anything is counted (a cost budget for a model without a price): the
   * store is not called, so nothing is hit or reserved.
   */
  readonly refuse?: Denial;
}

/** Rate limits, token budgets: decides what a request needs counted, never counts itself. */
export interface Planner {
  plan(input: PlanInput): CounterPlan;
}

/** A plan that needs nothing counted: it always grants `grant`. */
export function nothingToCount(grant: PlanGrant = {}): CounterPlan {
  return {
    windows: [],
    budgets: [],
    render: () => ({ ok: grant }),
    unavailable: () => {
      throw new Error('a plan with nothing to count cannot meet an unavailable store');
    },
  };
}

const hasItems = (p: CounterPlan): boolean => p.windows.length > 0 || p.budgets.length > 0;

/**
 * Counts what every planner wants for `input` in ONE all-or-nothing store call and turns the
 * store's answer into one verdict: the refusing plan's denial, or every plan's grant merged.
 * `planners` in order: on a store failure the first one with something to count answers.
 */
export async function admit(planners: readonly Planner[], store: Store, input: PlanInput): Promise<PlanVerdict> {
  const plans = planners.map((p) => p.plan(input));
  const refused = plans.find((p) => p.refuse !== undefined)?.refuse;
  if (refused !== undefined) return { deny: refused };
  const reservationId = input.handoffId ?? randomUUID();
  const counted = plans.filter(hasItems);

  let result: AdmitResult = { allowed: true, windows: [], reserved: [], remaining: [] };
  if (counted.length > 0) {
    const request = {
      windows: plans.flatMap((p) => p.windows),
      budgets: plans.flatMap((p) => p.budgets),
      reservationId,
      ttlMs: reservationTtl(plans),
    };
    try {
      result = await store.admit(request, input.now);
    } catch {
      // Whatever broke (the guarded store's closed policy, or an unguarded store), refuse:
      // admitting without counting is only done when the operator chose `open`. Every plan
      // hears of it (metrics); the first one words the 503.
      const denials = counted.map((p) => p.unavailable());
      return { deny: denials[0] as Denial };
    }
  }

  const answers = split(plans, result, reservationId);
  if (!result.allowed) {
    const i = answers.findIndex((a) => a.refusedBy !== undefined);
    const verdict = plans[i]?.render(answers[i] as PlanAnswer);
    if (verdict === undefined || !('deny' in verdict))
      throw new Error('the store refused an admission that no plan denies');
    return verdict;
  }
  const grants = plans.map((p, i) => {
    const verdict = p.render(answers[i] as PlanAnswer);
    if (!('ok' in verdict)) throw new Error('a plan denied an admission the store allowed');
    return verdict.ok;
  });
  return { ok: merge(grants) };
}

function reservationTtl(plans: readonly CounterPlan[]): number {
  const ttls = plans.filter((p) => p.budgets.length > 0).map((p) => p.reservationTtlMs);
  if (ttls.some((t) => t === undefined))
    throw new Error('a plan with budgets names no reservation TTL');
  return Math.max(0, ...(ttls as number[]));
}

/** Cuts the store's flat answer back into one answer per plan, in the plans' order. */
function split(plans: readonly CounterPlan[], r: AdmitResult, reservationId: string): PlanAnswer[] {
  let w = 0;
  let b = 0;
  return plans.map((p) => {
    const [w0, b0] = [w, b];
    w += p.windows.length;
    b += p.budgets.length;
    const refused = r.refusedBy;
    const own =
      refused === undefined
        ? undefined
        : refused.kind === 'window' && refused.index >= w0 && refused.index < w
          ? { kind: 'window' as const, index: refused.index - w0 }
          : refused.kind === 'budget' && refused.index >= b0 && refused.index < b
            ? { kind: 'budget' as const, index: refused.index - b0 }
            : undefined;
    return {
      windows: r.windows.slice(w0, w),
      reserved: r.reserved.slice(b0, b),
      remaining: r.remaining.slice(b0, b),
      ...(own !== undefined ? { refusedBy: own } : {}),
      ...(r.degraded !== undefined ? { degraded: r.degraded } : {}),
      reservationId,
    };
  });
}

/** The grants of all plans as one; only the keys some plan set, so an empty grant stays `{}`. */
function merge(grants: readonly PlanGrant[]): PlanGrant {
  const out: {
    responseHeaders?: Record<string, string>;
    metadata?: Record<string, unknown>;
    reservation?: Reservation;
    promptEstimate?: number;
    outputLimit?: number;
    price?: TokenPrice;
  } = {};
  for (const g of grants) {
    if (g.responseHeaders) out.responseHeaders = { ...out.responseHeaders, ...g.responseHeaders };
    if (g.metadata) out.metadata = { ...out.metadata, ...g.metadata };
    if (g.reservation !== undefined) out.reservation = joinReservations(out.reservation, g.reservation);
    if (g.promptEstimate !== undefined) out.promptEstimate = g.promptEstimate;
    if (g.outputLimit !== undefined) out.outputLimit = g.outputLimit;
    if (g.price !== undefined) out.price = g.price;
  }
  return out;
}

/** Two plans' reservations under the one admission id, as one: counters of both, in order. */
function joinReservations(a: Reservation | undefined, b: Reservation): Reservation {
  if (a === undefined) return b;
  const units = a.units !== undefined || b.units !== undefined
    ? [...a.budgets.map((_, i) => a.units?.[i] ?? 'tokens'), ...b.budgets.map((_, i) => b.units?.[i] ?? 'tokens')]
    : undefined;
  return {
    id: a.id,
    budgets: [...a.budgets, ...b.budgets],
    names: [...a.names, ...b.names],
    reserved: [...a.reserved, ...b.reserved],
    ...(units !== undefined ? { units } : {}),
  };
}
