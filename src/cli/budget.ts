/**
 * `tollgate budget [--tenant T] [--group G] [--user U] [--url URL] [--json]`: the used and
 * remaining tokens of budgets for the current period, read from a running sidecar's
 * `GET /budget` (beside /metrics), so it shows exactly what admission sees — with Redis, the
 * ledger every replica shares.
 */
import { parseArgs } from 'node:util';
import type { BudgetView } from '../budgets/view.js';

export const DEFAULT_BUDGET_URL = 'http://127.0.0.1:9464';

/** The environment variable the CLI reads `server.metricsToken` from (never a flag: flags show in `ps`). */
export const METRICS_TOKEN_ENV = 'TOLLGATE_METRICS_TOKEN';

/** The request headers for the listener's `/budget` and `/counters`: the token when one is set. */
export function listenerHeaders(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const token = env[METRICS_TOKEN_ENV]?.trim();
  return token !== undefined && token !== '' ? { authorization: `Bearer ${token}` } : {};
}

/** What a 401 from the listener means, in one line. */
export function unauthorizedText(origin: string): string {
  return `${origin} wants its server.metricsToken: set ${METRICS_TOKEN_ENV} to it (${process.env[METRICS_TOKEN_ENV] !== undefined ? 'the one set was refused' : 'it is not set'})`;
}

const HELP = `usage: tollgate budget [--tenant T] [--group G] [--user U] [--url URL] [--json]
  --url   the sidecar's metrics listener (default ${DEFAULT_BUDGET_URL}; a .../metrics URL works too)
  --json  print the endpoint's JSON instead of a table
The sidecar's server.metricsToken, when it has one, is read from ${METRICS_TOKEN_ENV}.
`;

interface Out {
  write(chunk: string): unknown;
}

/**
 * A route of the metrics listener (`/budget`, `/counters`) from the listener's base URL; the
 * ready line's `…/metrics` URL is accepted too. Throws when `base` is not a URL.
 */
export function listenerUrl(base: string, route: string): URL {
  const url = new URL(base);
  url.pathname = url.pathname.replace(/\/(metrics)?\/?$/, '') + route;
  url.search = '';
  return url;
}

/** The /budget URL for a metrics listener base (the ready line's `/metrics` URL is accepted). */
export function budgetUrl(base: string, filter: { tenant?: string[]; group?: string[]; user?: string[] }): URL {
  const url = listenerUrl(base, '/budget');
  for (const kind of ['tenant', 'group', 'user'] as const) {
    for (const v of filter[kind] ?? []) url.searchParams.append(kind, v);
  }
  return url;
}

/** Whole tokens with thousands separators, so 100000 and 1000000 are easy to tell apart; `-` when not counted. */
function n(value: number | undefined): string {
  return value === undefined ? '-' : value.toLocaleString('en-US');
}

/** An exact USD decimal string as `$1,234.5678` (at least cents); `-` for a budget without `maxCost`. */
function usd(value: string | undefined): string {
  if (value === undefined) return '-';
  const [whole = '0', frac = ''] = value.split('.');
  return `$${Number(whole).toLocaleString('en-US')}.${frac.replace(/0+$/, '').padEnd(2, '0')}`;
}

/** A fixed-width table: one row per budget. */
export function formatBudgetTable(budgets: readonly BudgetView[], nowMs: number): string {
  // Cost columns only when some budget has `maxCost`, so token-only tables stay as they were.
  const withCost = budgets.some((b) => b.cost !== undefined);
  const header = [
    'BUDGET', 'PERIOD', 'LIMIT', 'USED', 'RESERVED', 'REMAINING',
    ...(withCost ? ['COST LIMIT', 'COST USED', 'COST RESERVED', 'COST REMAINING'] : []),
    'RESETS',
  ];
  const rows = budgets.map((b) => [
    `${b.kind}:${b.subject}`,
    `${b.period} ${b.periodId}${b.timeZone === 'UTC' ? '' : ` (${b.timeZone})`}`,
    n(b.limit),
    n(b.used),
    n(b.reserved),
    n(b.remaining),
    ...(withCost ? [usd(b.cost?.limit), usd(b.cost?.used), usd(b.cost?.reserved), usd(b.cost?.remaining)] : []),
    `${b.resetsAt} (in ${humanDuration(Date.parse(b.resetsAt) - nowMs)})`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  // Numbers right-aligned, text left-aligned.
  const numeric = new Set(withCost ? [2, 3, 4, 5, 6, 7, 8, 9] : [2, 3, 4, 5]);
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (numeric.has(i) ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** `3d4h`, `5h2m`, `12m`, `<1m`: coarse on purpose, it is for people. */
export function humanDuration(ms: number): string {
  const minutes = Math.floor(Math.max(0, ms) / 60_000);
  if (minutes < 1) return '<1m';
  const d = Math.floor(minutes / 1440);
  const h = Math.floor((minutes % 1440) / 60);
  const m = minutes % 60;
  if (d > 0) return `${d}d${h}h`;
  if (h > 0) return `${h}h${m}m`;
  return `${m}m`;
}

/** Runs the command; returns the exit code (0 ok, 1 not found or unreachable, 2 usage). */
export async function budgetCommand(args: string[], stdout: Out, stderr: Out): Promise<number> {
  let values: { tenant?: string[]; group?: string[]; user?: string[]; url?: string; json?: boolean };
  try {
    values = parseArgs({
      args,
      options: {
        tenant: { type: 'string', multiple: true },
        group: { type: 'string', multiple: true },
        user: { type: 'string', multiple: true },
        url: { type: 'string' },
        json: { type: 'boolean' },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    stderr.write(`tollgate budget: ${err instanceof Error ? err.message : String(err)}\n\n${HELP}`);
    return 2;
  }
  let url: URL;
  try {
    url = budgetUrl(values.url ?? DEFAULT_BUDGET_URL, values);
  } catch {
    stderr.write(`tollgate budget: --url is not a URL: ${JSON.stringify(values.url)}\n`);
    return 2;
  }

  let status: number;
  let text: string;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(10_000), headers: listenerHeaders() });
    status = res.status;
    text = await res.text();
  } catch (err) {
    const cause = err instanceof Error && err.cause instanceof Error ? err.cause.message : String(err);
    stderr.write(`tollgate budget: cannot reach ${url.origin} (${cause}); is the sidecar running with server.metrics set?\n`);
    return 1;
  }
  if (status === 401) {
    stderr.write(`tollgate budget: ${unauthorizedText(url.origin)}\n`);
    return 1;
  }
  let body: { budgets?: BudgetView[]; error?: string };
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    stderr.write(`tollgate budget: ${url.href} answered ${status} without JSON\n`);
    return 1;
  }
  if (status !== 200 || body.budgets === undefined) {
    stderr.write(`tollgate budget: ${body.error ?? `HTTP ${status}`}\n`);
    return 1;
  }
  stdout.write(values.json ? `${JSON.stringify(body, null, 2)}\n` : formatBudgetTable(body.budgets, Date.now()));
  return 0;
}
