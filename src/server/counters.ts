/**
 * `GET /counters` beside `/metrics` and `/budget`: rate-limit windows and budget counters read
 * by their store keys, as the live Check computes them, so `tollgate explain --url` can judge a
 * request against the counters a running sidecar is about to find (docs/policy-testing.md).
 *
 *   GET /counters?window=rl:per-user:ann%40acme.test&budget=tb:tenant:acme:2026-12
 *
 * Strictly read-only, and never a window onto the store at large: each key must have the shape
 * the planners produce (`rl:<limit>[:<value>]`, `tb:|tc:<kind>:<subject>:<period id>`) AND name
 * a rate limit or budget of the running configuration; anything else is refused before the
 * store is touched. The counters are read from the store itself, without the guard's fallbacks:
 * a store that cannot be read is a 503, never a made-up zero.
 *
 * 200 `{"windows":[{key,count,resetMs?}],"budgets":[{key,unit,used,reserved}]}` in the order
 * asked; 400 for an unknown parameter, no key, too many or too long keys, or a key of another
 * shape; 404 for a well-formed key whose limit or budget the configuration does not have; 503
 * when the store cannot be read in time.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { BudgetAnswer } from '../budgets/view.js';
import { sendBudget } from '../budgets/view.js';
import { budgetLimits, budgetSubject } from '../budgets/planner.js';
import type { BudgetPeriod, Config } from '../config/schema.js';
import { MAX_VALUE_LENGTH } from '../limits/rate-limit.js';
import type { CounterSource } from '../store/store.js';

/** Keys one request may ask for (windows and budgets together); a client asks in batches. */
export const MAX_COUNTER_KEYS = 64;
/** The longest key accepted: far above what the planners make (values are hashed past 128). */
export const MAX_COUNTER_KEY_LENGTH = 512;
/** How long the store may take to answer before the route says 503. */
export const COUNTERS_DEADLINE_MS = 2000;

export interface CountersRouteDeps {
  /** The live configuration and counters (they change on reload). */
  config(): Pick<Config, 'rateLimits' | 'tokenBudgets'>;
  counters(): CounterSource;
  now?: () => number;
  deadlineMs?: number;
}

/** A window as `/counters` answers it. */
export interface WindowCounter {
  readonly key: string;
  readonly count: number;
  /** Milliseconds until the window ends; absent when no window is open. */
  readonly resetMs?: number;
}

/** A budget counter as `/counters` answers it: tokens (`tb:`) or micro-dollars (`tc:`). */
export interface BudgetCounter {
  readonly key: string;
  readonly unit: 'tokens' | 'usd-micros';
  readonly used: number;
  readonly reserved: number;
}

export interface CountersBody {
  readonly windows: readonly WindowCounter[];
  readonly budgets: readonly BudgetCounter[];
}

/** Characters `encodeURIComponent` leaves as they are, and `%` of its escapes. */
const ENCODED = /^[A-Za-z0-9\-_.!~*'()%]*$/;
/** A bucket value too long to keep, hashed (limits/rate-limit.ts `bucketKey`). */
const HASHED = /^sha256\.[A-Za-z0-9_-]{43}$/;

/** The period ids `periodWindow` makes (budgets/period.ts), per period. */
const PERIOD_ID: Readonly<Record<BudgetPeriod, RegExp>> = {
  minute: /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$/,
  hour: /^\d{4}-\d{2}-\d{2}T\d{2}$/,
  day: /^\d{4}-\d{2}-\d{2}$/,
  week: /^\d{4}-W\d{2}$/,
  month: /^\d{4}-\d{2}$/,
};

/** Why a key was refused: 400 (not a key the planners make) or 404 (not configured here). */
interface KeyRefusal {
  readonly status: 400 | 404;
  readonly error: string;
}

/** A rate-limit bucket key `rl:<limit>[:<value>]` of a configured limit, or why not. */
export function windowKeyRefusal(config: Pick<Config, 'rateLimits'>, key: string): KeyRefusal | undefined {
  const m = /^rl:([^:]+)(?::([^:]*))?$/.exec(key);
  if (m === null) return { status: 400, error: `window ${JSON.stringify(key)} is not a rate-limit key (rl:<limit>[:<value>])` };
  const [, name = '', value] = m;
  if (!ENCODED.test(name)) return { status: 400, error: `window ${JSON.stringify(key)}: the limit's name is not URI-encoded` };
  if (value !== undefined && !HASHED.test(value) && !(ENCODED.test(value) && value.length <= MAX_VALUE_LENGTH)) {
    return { status: 400, error: `window ${JSON.stringify(key)}: the bucket value is not one the limits make` };
  }
  if (!config.rateLimits.some((l) => encodeURIComponent(l.name) === name)) {
    return { status: 404, error: `window ${JSON.stringify(key)}: no rate limit of that name is configured` };
  }
  return undefined;
}

/** A budget counter key `tb:|tc:<kind>:<subject>:<period id>` of a configured budget, or why not. */
export function budgetKeyRefusal(config: Pick<Config, 'tokenBudgets'>, key: string): KeyRefusal | undefined {
  const m = /^(tb|tc):(tenant|group|user):([^:]*):([^:]+(?::\d{2})?)$/.exec(key);
  if (m === null) return { status: 400, error: `budget ${JSON.stringify(key)} is not a budget key (tb:|tc:<kind>:<subject>:<period>)` };
  const [, prefix, kind, subject = '', id = ''] = m;
  if (!ENCODED.test(subject)) return { status: 400, error: `budget ${JSON.stringify(key)}: the subject is not URI-encoded` };
  if (!Object.values(PERIOD_ID).some((re) => re.test(id))) {
    return { status: 400, error: `budget ${JSON.stringify(key)}: ${JSON.stringify(id)} is not a period id` };
  }
  const unit = prefix === 'tc' ? 'usd' : 'tokens';
  const found = config.tokenBudgets.some((b) => {
    const s = budgetSubject(b);
    return (
      s.kind === kind &&
      encodeURIComponent(s.subject) === subject &&
      PERIOD_ID[b.period].test(id) &&
      budgetLimits(b).some((l) => l.unit === unit)
    );
  });
  return found ? undefined : { status: 404, error: `budget ${JSON.stringify(key)}: no budget of that subject, period and unit is configured` };
}

/** Rejects after `ms`, so a store that hangs answers 503 instead of holding the request. */
function beforeDeadline<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}

/** The answer to `GET <url>` (`/counters?window=…&budget=…`), without the HTTP around it. */
export async function countersAnswer(deps: CountersRouteDeps, url: string): Promise<BudgetAnswer> {
  const query = new URL(url, 'http://localhost').searchParams;
  const windows: string[] = [];
  const budgets: string[] = [];
  for (const [name, value] of query) {
    if (name === 'window') windows.push(value);
    else if (name === 'budget') budgets.push(value);
    else return { status: 400, body: { error: `unknown parameter ${JSON.stringify(name)}; use window or budget` } };
  }
  const count = windows.length + budgets.length;
  if (count === 0) return { status: 400, body: { error: 'ask for at least one window=KEY or budget=KEY' } };
  if (count > MAX_COUNTER_KEYS) return { status: 400, body: { error: `at most ${MAX_COUNTER_KEYS} keys per request (${count} asked)` } };
  const tooLong = [...windows, ...budgets].find((k) => k.length > MAX_COUNTER_KEY_LENGTH);
  if (tooLong !== undefined) return { status: 400, body: { error: `a key is longer than ${MAX_COUNTER_KEY_LENGTH} characters` } };
  const config = deps.config();
  const refusals = [
    ...windows.map((k) => windowKeyRefusal(config, k)),
    ...budgets.map((k) => budgetKeyRefusal(config, k)),
  ].filter((r) => r !== undefined);
  // A malformed key is named before an unconfigured one: the request is wrong, not the config.
  const refusal = refusals.find((r) => r.status === 400) ?? refusals[0];
  if (refusal !== undefined) return { status: refusal.status, body: { error: refusal.error } };
  const store = deps.counters();
  const now = (deps.now ?? Date.now)();
  try {
    const read = Promise.all([
      Promise.all(windows.map((key) => store.readWindow(key, now))),
      Promise.all(budgets.map((key) => store.readBudget(key, now))),
    ]);
    const [w, b] = await beforeDeadline(read, deps.deadlineMs ?? COUNTERS_DEADLINE_MS);
    const body: CountersBody = {
      windows: windows.map((key, i) => {
        const c = w[i] ?? { count: 0 };
        return { key, count: c.count, ...(c.resetMs !== undefined ? { resetMs: c.resetMs } : {}) };
      }),
      budgets: budgets.map((key, i) => ({
        key,
        unit: key.startsWith('tc:') ? 'usd-micros' : 'tokens',
        used: b[i]?.used ?? 0,
        reserved: b[i]?.reserved ?? 0,
      })),
    };
    return { status: 200, body };
  } catch {
    return { status: 503, body: { error: 'the counter store is unavailable' } };
  }
}

/** The `GET /counters` handler. */
export function countersRoute(deps: CountersRouteDeps): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    void countersAnswer(deps, req.url ?? '/').then((answer) => sendBudget(res, answer));
  };
}
