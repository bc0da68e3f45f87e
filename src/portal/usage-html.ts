/**
 * The portal's usage views, from the usage book (store/usage-book.ts) and the budget counters:
 * the Me page's daily usage, and the Owners page (per user, per model, per day, budgets'
 * burn-down, estimated share). Every number is in a table; the charts repeat them.
 */
import type { BudgetView } from '../budgets/view.js';
import type { DayUsage, TenantReport, UsageTotals } from '../budgets/usage-report.js';
import { formatMicros } from '../metering/pricing.js';
import { barChart, burnDownChart } from './charts.js';
import { esc, layout, n, table } from './html.js';

const num = (v: number, cls: string): string => `<data value="${v}" class="${cls}">${esc(n(v))}</data>`;
const usd = (micros: number): string => (micros > 0 ? `$${formatMicros(micros)}` : '–');
const share = (t: UsageTotals): string => (t.tokens > 0 ? `${((100 * t.estimatedTokens) / t.tokens).toFixed(1)} %` : '–');
export const tenantLabel = (tenant: string): string => (tenant === '' ? '(no tenant)' : tenant);

function totalsCells(t: UsageTotals): string[] {
  return [
    num(t.requests, 'requests'),
    num(t.inputTokens, 'input'),
    num(t.outputTokens, 'output'),
    num(t.tokens, 'tokens'),
    esc(share(t)),
    esc(usd(t.costMicros)),
  ];
}

const TOTALS_HEAD = ['Requests', 'Input tokens', 'Output tokens', 'Tokens', 'Estimated', 'Cost'] as const;

function dayTable(id: string, caption: string, days: readonly DayUsage[]): string {
  const used = days.filter((d) => d.requests > 0);
  return table(id, caption, ['Day', ...TOTALS_HEAD], used.map((d) => [esc(d.day), ...totalsCells(d)]), 'No usage yet this period.');
}

/** The Me page's section: my tokens per day this month, chart and table. */
export function dailySection(month: string, days: readonly DayUsage[]): string {
  return `<section aria-labelledby="daily-h">
<h2 id="daily-h">Your usage this month (${esc(month)})</h2>
${barChart('daily-chart', `Your tokens per day, ${month}`, 'tokens', days.map((d) => ({ label: d.day, value: d.tokens })))}
${dayTable('daily-usage', 'Your usage per day (all models)', days)}
</section>`;
}

/** A tenant budget with the days of its period and the tokens used by the end of each day so far. */
export interface BurnDown {
  readonly budget: BudgetView & { readonly name: string };
  readonly days: readonly string[];
  readonly cumulative: readonly number[];
}

export interface OwnersPageData {
  readonly csrf: string;
  readonly month: string;
  readonly report: TenantReport;
  /** For those who see every tenant: the tenants to pick from. */
  readonly tenants?: readonly string[];
  readonly burnDowns: readonly BurnDown[];
  /** The rows shown per ranking (the rest are counted). */
  readonly top: number;
}

function tenantNav(current: string, tenants: readonly string[]): string {
  if (tenants.length === 0) return '';
  const items = tenants.map((t) =>
    t === current
      ? `<li><strong aria-current="page">${esc(tenantLabel(t))}</strong></li>`
      : `<li><a href="/owners?tenant=${encodeURIComponent(t)}">${esc(tenantLabel(t))}</a></li>`,
  );
  return `<nav aria-label="Tenants"><ul id="tenants">${items.join('')}</ul></nav>`;
}

function ranking<T extends UsageTotals>(id: string, caption: string, first: string, rows: readonly T[], name: (r: T) => string, top: number): string {
  const shown = rows.slice(0, top);
  const more = rows.length - shown.length;
  return `${table(id, caption, [first, ...TOTALS_HEAD], shown.map((r) => [esc(name(r)), ...totalsCells(r)]), 'No usage yet this period.')}${
    more > 0 ? `\n<p>${esc(`${more} more not shown.`)}</p>` : ''
  }`;
}

function burnDownSection(b: BurnDown, i: number): string {
  const v = b.budget;
  const chart = v.limit !== undefined ? burnDownChart(`burn-${i}`, `${v.name}: tokens used this ${v.period} against ${n(v.limit)}`, b.days, b.cumulative, v.limit) : '';
  return `<h3>${esc(v.name)} (${esc(v.period)} ${esc(v.periodId)})</h3>
<p class="budget-line" data-budget="${esc(v.name)}">Used ${num(v.used ?? 0, 'used')}, reserved ${num(v.reserved ?? 0, 'reserved')}, remaining ${num(v.remaining ?? 0, 'remaining')} of ${esc(n(v.limit))} tokens${v.cost !== undefined ? esc(`; $${v.cost.used} of $${v.cost.limit}`) : ''}; resets ${esc(v.resetsAt)}.</p>
${chart}`;
}

/** The Owners page for one tenant. */
export function ownersPage(d: OwnersPageData): string {
  const r = d.report;
  const label = tenantLabel(r.tenant);
  const body = `<h1>Owners: <span id="owners-tenant">${esc(label)}</span></h1>
<p><a href="/">Back to your page</a></p>
${d.tenants !== undefined ? tenantNav(r.tenant, d.tenants) : ''}
<section aria-labelledby="total-h">
<h2 id="total-h">This month (${esc(d.month)})</h2>
${table('tenant-total', `${label}: total this month`, [...TOTALS_HEAD], [totalsCells(r.total)], '')}
<p>"Estimated" is the share of tokens Tollgate estimated (requests cut short) rather than took from the provider's usage.</p>
</section>
<section aria-labelledby="budgets-h">
<h2 id="budgets-h">Budgets</h2>
${d.burnDowns.length > 0 ? d.burnDowns.map(burnDownSection).join('\n') : '<p id="no-budgets">No tenant budget applies to this tenant.</p>'}
</section>
<section aria-labelledby="users-h">
<h2 id="users-h">Top users</h2>
${ranking('by-user', 'Usage per user this month, most tokens first', 'User', r.byUser, (u) => u.user, d.top)}
</section>
<section aria-labelledby="models-h">
<h2 id="models-h">Models</h2>
${ranking('by-model', 'Usage per model this month, most tokens first', 'Model', r.byModel, (m) => m.model || '(none)', d.top)}
</section>
<section aria-labelledby="days-h">
<h2 id="days-h">Per day</h2>
${barChart('tenant-daily-chart', `${label}: tokens per day, ${d.month}`, 'tokens', r.days.map((x) => ({ label: x.day, value: x.tokens })))}
${dayTable('tenant-daily', `${label}: usage per day`, r.days)}
</section>`;
  return layout(`Owners: ${label}`, body, { csrf: d.csrf });
}
