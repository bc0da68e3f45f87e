/**
 * Who sees which tenant in the Owners view, and the data of one view (read from the usage book
 * and the budget counters; nothing is counted).
 *
 * - `portal.owners.groups`: members see every tenant (and pick one with `?tenant=`);
 * - `portal.owners.tenantGroups`: members see their own tenant only (`*`: any member of a
 *   tenant); another `?tenant=` is refused;
 * - everybody else: no Owners view.
 */
import { budgetName } from '../budgets/planner.js';
import { periodWindow } from '../budgets/period.js';
import { cumulative, dayIds, monthToDate, tenantReport, tenantsWithUsage, type TenantReport } from '../budgets/usage-report.js';
import { readBudgets } from '../budgets/view.js';
import type { Config, DailyUsageConfig, PortalOwners } from '../config/schema.js';
import type { Identity } from '../domain/identity.js';
import type { CounterReader } from '../store/store.js';
import type { UsageBook } from '../store/usage-book.js';
import type { BurnDown } from './usage-html.js';

export type OwnerScope = { readonly all: true } | { readonly all: false; readonly tenant: string };

/** What the identity may see in the Owners view; undefined = nothing. */
export function ownerScope(owners: PortalOwners | undefined, identity: Identity): OwnerScope | undefined {
  if (owners === undefined) return undefined;
  if (identity.groups.some((g) => owners.groups.includes(g))) return { all: true };
  const member = owners.tenantGroups.includes('*') || identity.groups.some((g) => owners.tenantGroups.includes(g));
  return member && identity.tenant !== undefined ? { all: false, tenant: identity.tenant } : undefined;
}

/** The tenant asked for, if the scope allows it (undefined = refused). */
export function tenantFor(scope: OwnerScope, asked: string | null, fallback: readonly string[]): string | undefined {
  if (!scope.all) return asked === null || asked === scope.tenant ? scope.tenant : undefined;
  return asked ?? fallback[0] ?? '';
}

export interface OwnersSources {
  readonly config: Pick<Config, 'tokenBudgets'>;
  readonly counters: CounterReader;
  readonly book: UsageBook;
  readonly days: DailyUsageConfig;
}

export interface OwnersData {
  readonly month: string;
  readonly report: TenantReport;
  readonly tenants?: readonly string[];
  readonly burnDowns: readonly BurnDown[];
}

/** The tenant's month to date, its tenant budgets with their burn-down, and (for `all`) the tenant list. */
export async function ownersData(src: OwnersSources, scope: OwnerScope, asked: string | null, now: number): Promise<OwnersData | undefined> {
  const zone = src.days.timeZone;
  const { month, days } = monthToDate(now, zone);
  const tenants = scope.all ? await tenantsWithUsage(src.book, days) : undefined;
  const tenant = tenantFor(scope, asked, tenants ?? []);
  if (tenant === undefined) return undefined;
  const report = await tenantReport(src.book, tenant, days);
  // The budgets charged to every member of the tenant: `tenant:` budgets naming it.
  const budgets = src.config.tokenBudgets.filter((b) => b.tenant !== undefined && b.tenant === tenant);
  const views = await readBudgets(budgets, src.counters, now);
  const tokensOn = new Map(report.days.map((d) => [d.day, d.tokens]));
  const burnDowns: BurnDown[] = [];
  for (const [i, b] of budgets.entries()) {
    const view = views[i];
    if (view === undefined || view.limit === undefined || (b.period !== 'month' && b.period !== 'week')) continue;
    const window = periodWindow(b.period, b.timeZone, now);
    const periodDays = dayIds(window.startMs, window.endMs - 1, zone);
    const elapsed = dayIds(window.startMs, now, zone);
    const missing = elapsed.filter((d) => !tokensOn.has(d));
    if (missing.length > 0) for (const d of (await tenantReport(src.book, tenant, missing)).days) tokensOn.set(d.day, d.tokens);
    burnDowns.push({ budget: { name: budgetName(b), ...view }, days: periodDays, cumulative: cumulative(elapsed.map((d) => tokensOn.get(d) ?? 0)) });
  }
  const withTenants = tenants !== undefined ? { tenants: tenants.includes(tenant) ? tenants : [...tenants, tenant].sort() } : {};
  return { month: month.id, report, burnDowns, ...withTenants };
}
