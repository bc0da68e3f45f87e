/**
 * Why requests failed, when they did: Envoy's own error counters (admin /stats) and the
 * sidecar's deny reasons and error/warn messages (its JSON log). Only non-zero entries are kept.
 */
import { existsSync, readFileSync } from 'node:fs';

const ENVOY_ERRORS =
  /^http\.ingress\.(downstream_rq_[45]xx|ext_authz\.(error|denied|failure_mode_allowed)|ext_proc\.[a-z_]*(fail|timeout|error|reject)[a-z_]*|local_rate_limit\.rate_limited|rbac\.denied|jwt_authn\.[a-z_]*(denied|fail)[a-z_]*)$/;

export async function envoyErrorCounters(adminUrl: string): Promise<Record<string, number>> {
  const res = await fetch(`${adminUrl}/stats?filter=${encodeURIComponent('^http\\.ingress\\.')}`, {
    signal: AbortSignal.timeout(5000),
  });
  const out: Record<string, number> = {};
  for (const line of (await res.text()).split('\n')) {
    const [name, value] = line.split(': ');
    if (name === undefined || value === undefined || !ENVOY_ERRORS.test(name)) continue;
    const n = Number(value);
    if (n > 0) out[name.replace(/^http\.ingress\./, '')] = n;
  }
  return out;
}

/** `deny <reason>` counts from audit lines, and `<level>: <msg>` counts of warnings and errors. */
export function sidecarLogSummary(logFile: string): Record<string, number> {
  const out: Record<string, number> = {};
  if (!existsSync(logFile)) return out;
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    let key: string | undefined;
    if (line.includes('"decision":"deny"'))
      key = `deny ${/"reason":"([^"]+)"/.exec(line)?.[1] ?? '?'}`;
    else if (/"level":"(warn|error|fatal)"/.test(line)) {
      const level = /"level":"(\w+)"/.exec(line)?.[1] ?? '?';
      key = `${level}: ${/"msg":"([^"]{0,80})/.exec(line)?.[1] ?? '?'}`;
    }
    if (key !== undefined) out[key] = (out[key] ?? 0) + 1;
  }
  return out;
}

/** The counters the error accounting reads, before and after a phase. */
export const PHASE_COUNTERS = [
  'http.ingress.downstream_rq_5xx',
  'http.ingress.ext_authz.ok',
  'http.ingress.ext_proc.streams_started',
  // GOAWAY received from the sidecar, and the streams Envoy reset toward it.
  'cluster.tollgate.upstream_cx_close_notify',
  'cluster.tollgate.upstream_rq_tx_reset',
  'cluster.tollgate.upstream_cx_max_requests',
] as const;
export type PhaseCounter = (typeof PHASE_COUNTERS)[number];

/** The PHASE_COUNTERS of the proxy Envoy now (0 for a counter Envoy does not have). */
export async function phaseCounters(adminUrl: string): Promise<Record<PhaseCounter, number>> {
  const res = await fetch(`${adminUrl}/stats?usedonly`, { signal: AbortSignal.timeout(5000) });
  const seen = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    const at = line.lastIndexOf(': ');
    if (at > 0) seen.set(line.slice(0, at), Number(line.slice(at + 2)));
  }
  const out = {} as Record<PhaseCounter, number>;
  for (const name of PHASE_COUNTERS) out[name] = seen.get(name) ?? 0;
  return out;
}

/** after − before, counter by counter. */
export function counterDelta(
  before: Record<PhaseCounter, number>,
  after: Record<PhaseCounter, number>,
): Record<PhaseCounter, number> {
  const out = {} as Record<PhaseCounter, number>;
  for (const name of PHASE_COUNTERS) out[name] = after[name] - before[name];
  return out;
}
