/**
 * `GET /budget` beside `/metrics`: the used, reserved and remaining tokens (and, for a budget
 * with `maxCost`, US dollars) of the configured budgets for their current period. Read-only, and it reads the same store the budgets
 * are charged in, so with Redis every replica answers alike.
 *
 *   GET /budget                       every configured budget
 *   GET /budget?tenant=marketing      that tenant's budget (also group=, user=; repeatable)
 *
 * 200 `{"budgets":[…]}`, 404 when no configured budget matches, 400 for an unknown query
 * parameter, 503 when the store cannot be read.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Config, TokenBudgetConfig } from '../config/schema.js';
import { periodWindow } from './period.js';
import { budgetKey, budgetLimits, budgetSubject, type BudgetKind } from './planner.js';
import { formatMicros } from '../metering/pricing.js';
import type { Store } from '../store/store.js';

/**
 * A budget's cost counter: USD as exact decimal strings (`"12.345678"`), since the store
 * counts whole micro-dollars and a float would not show them exactly.
 */
export interface CostView {
  readonly currency: 'USD';
  readonly limit: string;
  readonly used: string;
  readonly reserved: string;
  readonly remaining: string;
}

/**
 * One budget as the endpoint and `tollgate budget` show it: the token fields when it has
 * `maxTokens`, `cost` when it has `maxCost`.
 */
export interface BudgetView {
  readonly subject: string;
  readonly kind: BudgetKind;
  readonly limit?: number;
  readonly used?: number;
  /** Tokens held by requests still in flight (their estimates). */
  readonly reserved?: number;
  /** `limit - used - reserved`, never below zero: what a new request can still draw on. */
  readonly remaining?: number;
  readonly cost?: CostView;
  readonly period: TokenBudgetConfig['period'];
  readonly timeZone: string;
  /** The period's id in the store key, e.g. `2026-11`. */
  readonly periodId: string;
  /** ISO 8601 instants. */
  readonly periodStart: string;
  readonly resetsAt: string;
}

export type BudgetFilter = Readonly<Partial<Record<BudgetKind, readonly string[]>>>;

const KINDS: readonly BudgetKind[] = ['tenant', 'group', 'user'];

/** The configured budgets a filter names (all of them when the filter is empty). */
export function selectBudgets(
  budgets: readonly TokenBudgetConfig[],
  filter: BudgetFilter,
): TokenBudgetConfig[] {
  const any = KINDS.some((k) => (filter[k]?.length ?? 0) > 0);
  if (!any) return [...budgets];
  return budgets.filter((b) => {
    const { kind, subject } = budgetSubject(b);
    return filter[kind]?.includes(subject) ?? false;
  });
}

/** Reads each budget's counter for the period containing `now`. Store errors propagate. */
export async function readBudgets(
  budgets: readonly TokenBudgetConfig[],
  store: Pick<Store, 'readBudget'>,
  now: number,
): Promise<BudgetView[]> {
  return Promise.all(
    budgets.map(async (b) => {
      const window = periodWindow(b.period, b.timeZone, now);
      const counters = await Promise.all(
        budgetLimits(b).map(async ({ unit, limit }) => {
          const { used, reserved } = await store.readBudget(budgetKey(b, window, unit), now);
          return { unit, limit, used, reserved, remaining: Math.max(0, limit - used - reserved) };
        }),
      );
      const tokens = counters.find((c) => c.unit === 'tokens');
      const cost = counters.find((c) => c.unit === 'usd');
      const { kind, subject } = budgetSubject(b);
      return {
        subject,
        kind,
        ...(tokens !== undefined
          ? { limit: tokens.limit, used: tokens.used, reserved: tokens.reserved, remaining: tokens.remaining }
          : {}),
        ...(cost !== undefined
          ? {
              cost: {
                currency: 'USD' as const,
                limit: formatMicros(cost.limit),
                used: formatMicros(cost.used),
                reserved: formatMicros(cost.reserved),
                remaining: formatMicros(cost.remaining),
              },
            }
          : {}),
        period: b.period,
        timeZone: b.timeZone,
        periodId: window.id,
        periodStart: new Date(window.startMs).toISOString(),
        resetsAt: new Date(window.endMs).toISOString(),
      };
    }),
  );
}

export interface BudgetRouteDeps {
  /** The live configuration and store (they change on reload). */
  config(): Pick<Config, 'tokenBudgets'>;
  store(): Store;
  now?: () => number;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(`${JSON.stringify(body)}\n`);
}

/** What `GET /budget` answers: a status and a JSON body. */
export interface BudgetAnswer {
  readonly status: number;
  readonly body: unknown;
}

/**
 * The answer to `GET <url>` (`/budget?tenant=…`), without the HTTP around it: with workers,
 * one worker computes it and the primary sends it.
 */
export async function budgetAnswer(deps: BudgetRouteDeps, url: string): Promise<BudgetAnswer> {
  const query = new URL(url, 'http://localhost').searchParams;
  const filter: Partial<Record<BudgetKind, string[]>> = {};
  for (const [name, value] of query) {
    if (!(KINDS as readonly string[]).includes(name)) {
      return { status: 400, body: { error: `unknown parameter ${JSON.stringify(name)}; use tenant, group or user` } };
    }
    (filter[name as BudgetKind] ??= []).push(value);
  }
  const selected = selectBudgets(deps.config().tokenBudgets, filter);
  if (selected.length === 0) {
    const asked = Object.entries(filter).map(([k, v]) => `${k} ${v.map((s) => JSON.stringify(s)).join(', ')}`);
    return {
      status: 404,
      body: { error: asked.length > 0 ? `no token budget for ${asked.join('; ')}` : 'no token budgets are configured' },
    };
  }
  try {
    return { status: 200, body: { budgets: await readBudgets(selected, deps.store(), (deps.now ?? Date.now)()) } };
  } catch {
    return { status: 503, body: { error: 'the budget store is unavailable' } };
  }
}

/** Sends `answer` (from this process or a worker). */
export function sendBudget(res: ServerResponse, answer: BudgetAnswer): void {
  sendJson(res, answer.status, answer.body);
}

/** The `GET /budget` handler. */
export function budgetRoute(deps: BudgetRouteDeps): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    void budgetAnswer(deps, req.url ?? '/').then((answer) => sendBudget(res, answer));
  };
}
