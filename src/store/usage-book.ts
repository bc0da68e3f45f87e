/**
 * The usage book: per-day tallies of what each user used with each model, written once per
 * settled request (budgets/ledger.ts) and read by the portal (the Me chart, the Owners view).
 * Budgets say how much is left; the book says who used it, with what, on which day.
 *
 * What is kept, per day (on `metering.dailyUsage.timeZone`), tenant, user and model: requests,
 * input tokens, output tokens, the tokens that were estimated rather than reported by the
 * provider, and the cost in micro-dollars when the model is priced. Nothing else: no prompt,
 * no request id. A day's tallies expire `metering.dailyUsage.keepDays` after the day.
 *
 * Layout (Redis, under the store's key prefix; the memory book mirrors it):
 * - `usage:<day>:tenants`            set of the tenants with usage that day;
 * - `usage:<day>:users:<tenant>`     set of that tenant's users with usage that day;
 * - `usage:<day>:u:<tenant>:<user>`  hash, field `<model>\u0000<kind>` → integer.
 * One tally is one script call (see redis-usage.ts): 5 HINCRBY, 2 SADD, 3 PEXPIREAT.
 *
 * The book is a report, not a ledger: a tally that cannot be written (Redis away) is logged
 * and dropped, while the request's audit line (audit: usage) still carries every number.
 */

/** One settled request's usage. */
export interface UsageTally {
  /** The day, `YYYY-MM-DD`, on the book's time zone. */
  readonly day: string;
  readonly tenant: string;
  readonly user: string;
  readonly model: string;
  readonly inputTokens: number;
  readonly outputTokens: number;
  /** All of the request's tokens when they were estimated (an abort), else 0. */
  readonly estimatedTokens: number;
  /** Micro-dollars when the model is priced, else 0. */
  readonly costMicros: number;
  /** When the day's keys may go (the day's end plus `keepDays`). */
  readonly expiresAtMs: number;
}

/** What one user used with one model on one day. */
export interface UsageRow {
  readonly user: string;
  readonly model: string;
  readonly requests: number;
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly estimatedTokens: number;
  readonly costMicros: number;
}

export interface UsageBook {
  tally(t: UsageTally): Promise<void>;
  /** One tenant's rows of one day; with `user`, that user's only. */
  readDay(day: string, tenant: string, user?: string): Promise<UsageRow[]>;
  /** The tenants with usage on `day`. */
  tenants(day: string): Promise<string[]>;
}

/** Field kinds of a user's day hash. */
export const KINDS = {
  requests: 'r',
  inputTokens: 'i',
  outputTokens: 'o',
  estimatedTokens: 'e',
  costMicros: 'c',
} as const satisfies Record<Exclude<keyof UsageRow, 'user' | 'model'>, string>;

const KIND_OF = new Map<string, keyof typeof KINDS>(
  Object.entries(KINDS).map(([name, code]) => [code, name as keyof typeof KINDS]),
);

/** NUL never appears in a model name (canonical names only) and ends the model in a field. */
const SEP = '\u0000';

/** The increments of one tally, as hash fields and amounts (zero amounts left out). */
export function tallyFields(t: UsageTally): [string, number][] {
  const amounts: Record<keyof typeof KINDS, number> = {
    requests: 1,
    inputTokens: t.inputTokens,
    outputTokens: t.outputTokens,
    estimatedTokens: t.estimatedTokens,
    costMicros: t.costMicros,
  };
  return (Object.keys(KINDS) as (keyof typeof KINDS)[])
    .map((k): [string, number] => [`${t.model}${SEP}${KINDS[k]}`, whole(amounts[k])])
    .filter(([, n]) => n > 0);
}

/** A user's day hash, read back as one row per model. */
export function rowsOf(user: string, hash: Readonly<Record<string, string | number>>): UsageRow[] {
  const byModel = new Map<string, Record<keyof typeof KINDS, number>>();
  for (const [field, value] of Object.entries(hash)) {
    const at = field.lastIndexOf(SEP);
    const kind = KIND_OF.get(field.slice(at + 1));
    if (at < 0 || kind === undefined) continue;
    const model = field.slice(0, at);
    const row = byModel.get(model) ?? { requests: 0, inputTokens: 0, outputTokens: 0, estimatedTokens: 0, costMicros: 0 };
    row[kind] += Number(value) || 0;
    byModel.set(model, row);
  }
  return [...byModel].map(([model, r]) => ({ user, model, ...r }));
}

export const usageKeys = {
  tenants: (day: string): string => `usage:${day}:tenants`,
  users: (day: string, tenant: string): string => `usage:${day}:users:${tenant}`,
  user: (day: string, tenant: string, user: string): string => `usage:${day}:u:${tenant}:${user}`,
};

function whole(n: number): number {
  return Number.isFinite(n) && n > 0 ? Math.round(n) : 0;
}

interface Day {
  readonly expiresAt: number;
  /** tenant → user → field → amount */
  readonly tenants: Map<string, Map<string, Map<string, number>>>;
}

/** The book in this process's memory (the memory store's companion; one replica). */
export class MemoryUsageBook implements UsageBook {
  private readonly days = new Map<string, Day>();
  private readonly now: () => number;

  constructor(now: () => number = Date.now) {
    this.now = now;
  }

  tally(t: UsageTally): Promise<void> {
    this.sweep();
    let day = this.days.get(t.day);
    if (day === undefined) {
      day = { expiresAt: t.expiresAtMs, tenants: new Map() };
      this.days.set(t.day, day);
    }
    let users = day.tenants.get(t.tenant);
    if (users === undefined) day.tenants.set(t.tenant, (users = new Map<string, Map<string, number>>()));
    let fields = users.get(t.user);
    if (fields === undefined) users.set(t.user, (fields = new Map<string, number>()));
    for (const [field, n] of tallyFields(t)) fields.set(field, (fields.get(field) ?? 0) + n);
    return Promise.resolve();
  }

  readDay(day: string, tenant: string, user?: string): Promise<UsageRow[]> {
    const users = this.live(day)?.tenants.get(tenant);
    if (users === undefined) return Promise.resolve([]);
    const mine = user === undefined ? undefined : users.get(user);
    const pick = user === undefined ? [...users] : mine === undefined ? [] : [[user, mine] as const];
    return Promise.resolve(pick.flatMap(([u, fields]) => rowsOf(u, Object.fromEntries(fields))));
  }

  tenants(day: string): Promise<string[]> {
    return Promise.resolve([...(this.live(day)?.tenants.keys() ?? [])]);
  }

  private live(day: string): Day | undefined {
    const d = this.days.get(day);
    if (d !== undefined && d.expiresAt <= this.now()) {
      this.days.delete(day);
      return undefined;
    }
    return d;
  }

  private sweep(): void {
    for (const day of this.days.keys()) this.live(day);
  }
}
