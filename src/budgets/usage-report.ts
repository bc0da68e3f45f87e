/**
 * Reports over the usage book (store/usage-book.ts), for the portal: a user's daily usage, and a
 * tenant's usage per user, per model and per day with its budgets' burn-down. Plain sums of the
 * tallies; what is left of a budget always comes from the budget counters themselves.
 */
import type { UsageBook, UsageRow } from '../store/usage-book.js';
import { periodWindow, type PeriodWindow } from './period.js';

export interface UsageTotals {
  readonly requests: number;
  readonly inputTokens: number;
  readonly outputTokens: number;
  /** input + output */
  readonly tokens: number;
  /** Of `tokens`, those estimated (aborted requests) rather than reported by the provider. */
  readonly estimatedTokens: number;
  readonly costMicros: number;
}

export interface DayUsage extends UsageTotals {
  /** `YYYY-MM-DD` on the book's time zone. */
  readonly day: string;
}

export interface TenantReport {
  readonly tenant: string;
  readonly days: readonly DayUsage[];
  /** Highest `tokens` first: the top spenders. */
  readonly byUser: readonly (UsageTotals & { readonly user: string })[];
  /** Highest `tokens` first. */
  readonly byModel: readonly (UsageTotals & { readonly model: string })[];
  readonly total: UsageTotals;
}

export const ZERO: UsageTotals = { requests: 0, inputTokens: 0, outputTokens: 0, tokens: 0, estimatedTokens: 0, costMicros: 0 };

function add(a: UsageTotals, r: UsageRow | UsageTotals): UsageTotals {
  const tokens = 'tokens' in r ? r.tokens : r.inputTokens + r.outputTokens;
  return {
    requests: a.requests + r.requests,
    inputTokens: a.inputTokens + r.inputTokens,
    outputTokens: a.outputTokens + r.outputTokens,
    tokens: a.tokens + tokens,
    estimatedTokens: a.estimatedTokens + r.estimatedTokens,
    costMicros: a.costMicros + r.costMicros,
  };
}

/** The ids of the days (on `timeZone`) from `startMs` up to `untilMs` (inclusive), in order. */
export function dayIds(startMs: number, untilMs: number, timeZone: string): string[] {
  const out: string[] = [];
  for (let t = startMs; t <= untilMs && out.length < 400; ) {
    const day = periodWindow('day', timeZone, t);
    out.push(day.id);
    t = day.endMs;
  }
  return out;
}

/** This month on `timeZone`, and its days up to today. */
export function monthToDate(now: number, timeZone: string): { readonly month: PeriodWindow; readonly days: string[] } {
  const month = periodWindow('month', timeZone, now);
  return { month, days: dayIds(month.startMs, now, timeZone) };
}

/** One user's usage per day (days without usage as zeros), all models together. */
export async function userDays(book: UsageBook, tenant: string, user: string, days: readonly string[]): Promise<DayUsage[]> {
  const rows = await Promise.all(days.map((d) => book.readDay(d, tenant, user)));
  return days.map((day, i) => ({ day, ...(rows[i] ?? []).reduce(add, ZERO) }));
}

function ranked<K extends string>(map: Map<string, UsageTotals>, key: K): (UsageTotals & Record<K, string>)[] {
  return [...map]
    .map(([name, t]) => ({ ...t, [key]: name }) as UsageTotals & Record<K, string>)
    .sort((a, b) => b.tokens - a.tokens || b.costMicros - a.costMicros || (a[key] < b[key] ? -1 : 1));
}

/** A tenant's usage over `days`: per day, per user, per model, and in total. */
export async function tenantReport(book: UsageBook, tenant: string, days: readonly string[]): Promise<TenantReport> {
  const perDay = await Promise.all(days.map((d) => book.readDay(d, tenant)));
  const byUser = new Map<string, UsageTotals>();
  const byModel = new Map<string, UsageTotals>();
  let total = ZERO;
  const dayTotals = days.map((day, i) => {
    let sum = ZERO;
    for (const r of perDay[i] ?? []) {
      sum = add(sum, r);
      byUser.set(r.user, add(byUser.get(r.user) ?? ZERO, r));
      byModel.set(r.model, add(byModel.get(r.model) ?? ZERO, r));
    }
    total = add(total, sum);
    return { day, ...sum };
  });
  return { tenant, days: dayTotals, byUser: ranked(byUser, 'user'), byModel: ranked(byModel, 'model'), total };
}

/** The tenants with usage on any of `days`, sorted. */
export async function tenantsWithUsage(book: UsageBook, days: readonly string[]): Promise<string[]> {
  const lists = await Promise.all(days.map((d) => book.tenants(d)));
  return [...new Set(lists.flat())].sort();
}

/** Running totals of `values` (a burn-down's curve). */
export function cumulative(values: readonly number[]): number[] {
  let sum = 0;
  return values.map((v) => (sum += v));
}
