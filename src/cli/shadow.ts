/**
 * `tollgate shadow [--url URL] [--json]`: the would-be denials of shadow rules (and of
 * `authorization.mode: shadow`), per rule and reason, read from a running sidecar's `/metrics`
 * (`tollgate_policy_shadow_denials_total`), beside the allowed decisions they are a share of
 * (`tollgate_decisions_total{result="allow"}`). Counters count since the process started, per
 * replica: the report is of the sidecar asked.
 */
import { parseArgs } from 'node:util';
import { DEFAULT_BUDGET_URL } from './budget.js';

const SHADOW = 'tollgate_policy_shadow_denials_total';
const DECISIONS = 'tollgate_decisions_total';

const HELP = `usage: tollgate shadow [--url URL] [--json]
  --url   the sidecar's metrics listener (default ${DEFAULT_BUDGET_URL}; a .../metrics URL works too)
  --json  the report as JSON
`;

export interface ShadowRow {
  readonly rule: string;
  readonly reason: string;
  /** Allowed requests this shadow rule would have denied. */
  readonly wouldDeny: number;
}

export interface ShadowReport {
  /** Allowed decisions in all (the share's denominator). */
  readonly allowed: number;
  /** Most would-be denials first. */
  readonly rules: readonly ShadowRow[];
}

interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** One sample line of the Prometheus text format (`name{a="x",b="y\\"z"} 3`), or undefined. */
export function parseSample(line: string): Sample | undefined {
  const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
  if (m === null) return undefined;
  const labels: Record<string, string> = {};
  const body = m[3] ?? '';
  const label = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (let l = label.exec(body); l !== null; l = label.exec(body)) {
    labels[l[1] ?? ''] = (l[2] ?? '').replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
  }
  const value = Number(m[4]);
  return Number.isFinite(value) ? { name: m[1] ?? '', labels, value } : undefined;
}

/** The report of one exposition: series of the same rule and reason added up. */
export function shadowReport(exposition: string): ShadowReport {
  const byRule = new Map<string, ShadowRow>();
  let allowed = 0;
  for (const line of exposition.split('\n')) {
    if (line.startsWith('#')) continue;
    const s = parseSample(line);
    if (s === undefined) continue;
    if (s.name === DECISIONS && s.labels['result'] === 'allow') allowed += s.value;
    if (s.name !== SHADOW) continue;
    const rule = s.labels['rule'] ?? '';
    const reason = s.labels['reason'] ?? '';
    const key = JSON.stringify([rule, reason]);
    byRule.set(key, { rule, reason, wouldDeny: (byRule.get(key)?.wouldDeny ?? 0) + s.value });
  }
  const rules = [...byRule.values()].sort((a, b) => b.wouldDeny - a.wouldDeny || a.rule.localeCompare(b.rule));
  return { allowed, rules };
}

function percent(part: number, whole: number): string {
  return whole > 0 ? `${((100 * part) / whole).toFixed(1)}%` : '-';
}

export function formatShadowTable(report: ShadowReport): string {
  if (report.rules.length === 0) return `no shadow denials recorded (${report.allowed} allowed decisions)\n`;
  const header = ['RULE', 'REASON', 'WOULD DENY', 'OF ALLOWED'];
  const rows = report.rules.map((r) => [r.rule, r.reason, String(r.wouldDeny), percent(r.wouldDeny, report.allowed)]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i >= 2 ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return `${[line(header), ...rows.map(line)].join('\n')}\n${report.allowed} allowed decisions since the sidecar started\n`;
}

interface Out {
  write(chunk: string): unknown;
}

/** The /metrics URL of a metrics listener base (a `.../metrics` URL is kept). */
export function metricsUrl(base: string): URL {
  const url = new URL(base);
  url.pathname = `${url.pathname.replace(/\/(metrics)?\/?$/, '')}/metrics`;
  url.search = '';
  return url;
}

/** Runs the command; returns the exit code (0 reported, 1 unreachable or not a sidecar, 2 usage). */
export async function shadowCommand(args: string[], stdout: Out, stderr: Out): Promise<number> {
  let values: { url?: string; json?: boolean };
  try {
    values = parseArgs({ args, options: { url: { type: 'string' }, json: { type: 'boolean' } }, strict: true, allowPositionals: false }).values;
  } catch (err) {
    stderr.write(`tollgate shadow: ${err instanceof Error ? err.message : String(err)}\n\n${HELP}`);
    return 2;
  }
  let url: URL;
  try {
    url = metricsUrl(values.url ?? DEFAULT_BUDGET_URL);
  } catch {
    stderr.write(`tollgate shadow: --url is not a URL: ${JSON.stringify(values.url)}\n`);
    return 2;
  }
  let text: string;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    text = await res.text();
    if (res.status !== 200) {
      stderr.write(`tollgate shadow: ${url.href} answered ${res.status}\n`);
      return 1;
    }
  } catch (err) {
    const cause = err instanceof Error && err.cause instanceof Error ? err.cause.message : String(err);
    stderr.write(`tollgate shadow: cannot reach ${url.origin} (${cause}); is the sidecar running with server.metrics set?\n`);
    return 1;
  }
  if (!/^# (TYPE|HELP) /m.test(text)) {
    stderr.write(`tollgate shadow: ${url.href} is not a Prometheus text exposition: not a sidecar's metrics listener?\n`);
    return 1;
  }
  const report = shadowReport(text);
  stdout.write(values.json === true ? `${JSON.stringify(report, null, 2)}\n` : formatShadowTable(report));
  return 0;
}
