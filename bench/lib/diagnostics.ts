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
