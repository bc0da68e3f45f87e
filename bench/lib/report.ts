/**
 * Results → bench/RESULTS.md. Everything in the file comes from a run (plus the hand-written
 * bench/OPTIMISATIONS.md, copied in verbatim), so the file is regenerated, never edited.
 */
import type { CheckRunResult } from './check.js';
import type { FixedRateResult, WrkResult } from './load.js';
import type { StreamResult } from './stream.js';

export interface CaseResult {
  readonly id: string;
  readonly title: string;
  readonly error?: string;
  readonly saturation?: WrkResult;
  readonly fixed?: FixedRateResult;
  /** Sidecar CPU per request, µs, at saturation and at the fixed rate. */
  readonly sidecarCpuUs?: { saturation: number; fixed: number };
  /** Proxy Envoy CPU per request at saturation, µs. */
  readonly envoyCpuUs?: number;
  /** Resident MiB after the fixed-rate phase, its peak, and at start before any request. */
  readonly sidecarMemory?: {
    rss: number;
    peak: number;
    start: number;
    afterGc: { rss: number; heapUsed: number };
  };
  /** Non-zero error counters of the proxy Envoy and the sidecar's deny reasons / warnings. */
  readonly diagnostics?: { envoy: Record<string, number>; sidecar: Record<string, number> };
  /** 5xx Envoy answered during the measured valid-traffic phases (saturation + fixed rate). */
  readonly valid5xx?: number;
  readonly mixed?: MixedResult;
}

/** The mixed-traffic phase: saturation with valid, denied and junk tokens (bench/lib/cases.ts). */
export interface MixedResult {
  readonly seconds: number;
  readonly rps: number;
  readonly requests: number;
  /** Responses by HTTP status, as the client counted them. */
  readonly statuses: Readonly<Record<string, number>>;
  readonly ok: number;
  /** 401 and 403: what the junk and the refused group are meant to get. */
  readonly denied: number;
  /** Every other non-2xx status. */
  readonly unexpected: number;
  readonly fiveXx: number;
  readonly socketErrors: number;
  /** Envoy's own count of 5xx it answered in the phase (a cross-check of fiveXx). */
  readonly envoy5xx: number;
  /** GOAWAY frames Envoy received from the sidecar (cluster.tollgate.upstream_cx_close_notify). */
  readonly sidecarGoaways: number;
  /** Requests ext_authz allowed, and ext_proc streams Envoy opened: equal when denials open none. */
  readonly admitted: number;
  readonly extProcStreams: number;
  /** RST_STREAM frames Envoy sent the sidecar (every ext_proc stream ends with one). */
  readonly resetsToSidecar: number;
}

export interface CheckModeResult {
  readonly cache: boolean;
  /** Sidecar resident MiB when ready, before the first Check. */
  readonly startMiB?: number;
  readonly runs: CheckRunResult[];
  readonly error?: string;
}

export interface MachineFacts {
  readonly cpuModel: string;
  readonly cpus: number;
  readonly memory: string;
  readonly kernel: string;
  readonly node: string;
  readonly envoy: string;
  readonly wrk: string;
  readonly redis: string;
  readonly loadBefore: string;
  readonly loadAfter?: string;
}

export interface RunResults {
  readonly profile: string;
  readonly date: string;
  readonly command: string;
  readonly durationSeconds: number;
  readonly machine: MachineFacts;
  readonly settings: Record<string, unknown>;
  readonly cases: CaseResult[];
  readonly stream?: StreamResult;
  readonly streamError?: string;
  readonly checks: CheckModeResult[];
}

const f = (n: number | undefined, digits = 2): string =>
  n === undefined || !Number.isFinite(n) ? '–' : n.toFixed(digits);
const int = (n: number | undefined): string =>
  n === undefined || !Number.isFinite(n) ? '–' : Math.round(n).toLocaleString('en-US');
const ratio = (a: number | undefined, b: number | undefined): string =>
  a === undefined || b === undefined || !(b > 0) ? '–' : `${(a / b).toFixed(2)}×`;
const delta = (a: number | undefined, b: number | undefined): string =>
  a === undefined || b === undefined || !Number.isFinite(a - b)
    ? '–'
    : `${a - b >= 0 ? '+' : ''}${(a - b).toFixed(2)}`;

function caseTables(results: RunResults): string[] {
  const byId = new Map(results.cases.map((c) => [c.id, c]));
  const a = byId.get('a');
  const b = byId.get('b');
  const rate = results.cases.find((c) => c.fixed)?.fixed?.rate;
  const out = [
    '## Envoy configurations',
    '',
    `Throughput: wrk at saturation. Latency: the fixed-rate client at ${rate ?? '–'} requests/s (milliseconds, client to client).`,
    'Ratios and differences are against (a) and (b) of this same run.',
    '',
    '| config | req/s at saturation | vs (a) | vs (b) | p50 ms | p99 ms | p50 − (a) | p99 − (a) | p50 − (b) | p99 − (b) | sidecar CPU µs/req (sat / fixed) | sidecar RSS MiB (start / end / peak) | after GC: RSS / heap MiB | Envoy CPU µs/req | errors |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const c of results.cases) {
    if (c.error !== undefined) {
      out.push(
        `| (${c.id}) ${c.title} | failed: ${c.error.split('\n')[0]?.replace(/\|/g, '/')} | | | | | | | | | | | | | |`,
      );
      continue;
    }
    const s = c.saturation;
    const x = c.fixed;
    const errors = (s?.non2xx ?? 0) + (s?.socketErrors ?? 0) + (x?.failed ?? 0);
    out.push(
      `| (${c.id}) ${c.title} | ${int(s?.rps)} | ${ratio(s?.rps, a?.saturation?.rps)} | ${ratio(s?.rps, b?.saturation?.rps)} | ` +
        `${f(x?.p50)} | ${f(x?.p99)} | ${delta(x?.p50, a?.fixed?.p50)} | ${delta(x?.p99, a?.fixed?.p99)} | ` +
        `${delta(x?.p50, b?.fixed?.p50)} | ${delta(x?.p99, b?.fixed?.p99)} | ` +
        `${c.sidecarCpuUs ? `${int(c.sidecarCpuUs.saturation)} / ${int(c.sidecarCpuUs.fixed)}` : '–'} | ` +
        `${c.sidecarMemory ? `${f(c.sidecarMemory.start, 0)} / ${f(c.sidecarMemory.rss, 0)} / ${f(c.sidecarMemory.peak, 0)}` : '–'} | ` +
        `${c.sidecarMemory ? `${f(c.sidecarMemory.afterGc.rss, 0)} / ${f(c.sidecarMemory.afterGc.heapUsed, 0)}` : '–'} | ${int(c.envoyCpuUs)} | ${errors} |`,
    );
  }
  const notes = results.cases.flatMap((c) => {
    const entries = [
      ...Object.entries(c.diagnostics?.envoy ?? {}).map(([k, v]) => `Envoy ${k} ${v}`),
      ...Object.entries(c.diagnostics?.sidecar ?? {}).map(([k, v]) => `sidecar ${k} ×${v}`),
    ];
    return entries.length === 0 ? [] : [`- (${c.id}): ${entries.join('; ')}`];
  });
  if (notes.length > 0)
    out.push(
      '',
      'Errors, denials and warnings seen during the configuration (warm-up and mixed traffic included):',
      '',
      ...notes,
    );
  const late = results.cases.reduce((sum, c) => sum + (c.fixed?.late ?? 0), 0);
  if (late > 0)
    out.push(
      '',
      `The fixed-rate client fell more than 2 ms behind schedule on ${late} sends: the machine was busy.`,
    );
  return out;
}

function errorTable(results: RunResults): string[] {
  const seconds = results.cases.find((c) => c.mixed)?.mixed?.seconds;
  const out = [
    '## Errors and mixed traffic',
    '',
    "Valid traffic: the saturation and fixed-rate phases above; unexpected = every non-2xx and socket error, 5xx from Envoy's counters.",
    `Mixed traffic: wrk at saturation for ${seconds === undefined ? '–' : Math.round(seconds)} s (same connections as above); per ten requests five valid users, one user of a group the policy refuses, one forged signature, two garbage tokens and one request without a token.`,
    'Expected denials are 401 and 403; unexpected is every other non-2xx. GOAWAY: frames the sidecar sent Envoy. ext_proc streams / admitted: streams Envoy opened per request ext_authz allowed (denials open none).',
    '',
    '| config | valid: requests | valid: unexpected non-2xx | valid: 5xx | mixed: req/s | mixed: requests | mixed: 2xx | mixed: expected 401/403 | mixed: unexpected non-2xx | mixed: 5xx | mixed: socket errors | GOAWAY from sidecar | ext_proc streams / admitted |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const c of results.cases) {
    if (c.error !== undefined) {
      out.push(`| (${c.id}) | failed | | | | | | | | | | | |`);
      continue;
    }
    const s = c.saturation;
    const x = c.fixed;
    const m = c.mixed;
    const validRequests = (s?.requests ?? 0) + (x?.count ?? 0);
    const validErrors = (s?.non2xx ?? 0) + (s?.socketErrors ?? 0) + (x?.failed ?? 0);
    const sidecar = c.sidecarCpuUs !== undefined;
    out.push(
      `| (${c.id}) | ${int(validRequests)} | ${int(validErrors)} | ${int(c.valid5xx)} | ` +
        `${int(m?.rps)} | ${int(m?.requests)} | ${int(m?.ok)} | ${int(m?.denied)} | ${int(m?.unexpected)} | ` +
        `${int(m?.fiveXx)} | ${int(m?.socketErrors)} | ${sidecar ? int(m?.sidecarGoaways) : '–'} | ` +
        `${sidecar && m !== undefined ? `${int(m.extProcStreams)} / ${int(m.admitted)}` : '–'} |`,
    );
  }
  const other = results.cases.flatMap((c) => {
    const odd = Object.entries(c.mixed?.statuses ?? {}).filter(
      ([status]) => !status.startsWith('2') && status !== '401' && status !== '403',
    );
    return odd.length === 0
      ? []
      : [`- (${c.id}) mixed traffic: ${odd.map(([k, v]) => `${v} × ${k}`).join(', ')}`];
  });
  if (other.length > 0) out.push('', 'Unexpected statuses:', '', ...other);
  return out;
}

function streamTable(results: RunResults): string[] {
  const out = ['## Streaming (e)', ''];
  if (results.streamError !== undefined) return [...out, `Failed: ${results.streamError}`];
  const s = results.stream;
  if (s === undefined) return [...out, 'Not run.'];
  out.push(
    `${s.direct.streams} streams per path, ${s.chunks} chunks each, ${s.delayMs} ms apart, both paths in the same run, alternating.`,
    'TTFT: request written → first chunk read. Chunk transit: upstream wrote it → client read it (monotonic clock shared by both processes).',
    '',
    '| path | TTFT p50 ms | TTFT p99 ms | chunk transit p50 ms | chunk transit p99 ms | failed streams |',
    '|---|---|---|---|---|---|',
    `| Envoy → upstream | ${f(s.direct.ttft.p50, 3)} | ${f(s.direct.ttft.p99, 3)} | ${f(s.direct.transit.p50, 3)} | ${f(s.direct.transit.p99, 3)} | ${s.direct.failed} |`,
    `| Envoy + Tollgate (as (d)) | ${f(s.tollgate.ttft.p50, 3)} | ${f(s.tollgate.ttft.p99, 3)} | ${f(s.tollgate.transit.p50, 3)} | ${f(s.tollgate.transit.p99, 3)} | ${s.tollgate.failed} |`,
    `| **added by Tollgate** | **${f(s.addedTtftP50, 3)}** | ${f(s.addedTtftP99, 3)} | **${f(s.addedChunkP50, 3)}** | ${f(s.addedChunkP99, 3)} | |`,
  );
  return out;
}

function checkTable(results: RunResults): string[] {
  const out = [
    '## Check RPC, sidecar alone',
    '',
    'A grpc-js client keeps calls in flight against the sidecar (no Envoy); each run lasts at least its duration and at least one pass over every user.',
    '',
    '| token cache | users | checks/s | p50 ms | p99 ms | sidecar CPU µs/check | RSS MiB (start / end / peak) | after GC: RSS / heap MiB | denied / failed |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const mode of results.checks) {
    const label = mode.cache ? 'on (default size)' : 'off';
    if (mode.error !== undefined)
      out.push(
        `| ${label} | failed: ${mode.error.split('\n')[0]?.replace(/\|/g, '/')} | | | | | | | |`,
      );
    for (const r of mode.runs) {
      out.push(
        `| ${label} | ${int(r.users)} | ${int(r.checksPerSecond)} | ${f(r.p50)} | ${f(r.p99)} | ${int(r.cpuUs)} | ${f(mode.startMiB, 0)} / ${f(r.rssMiB, 0)} / ${f(r.peakMiB, 0)} | ${f(r.afterGc?.rss, 0)} / ${f(r.afterGc?.heapUsed, 0)} | ${r.denied} / ${r.failed} |`,
      );
    }
  }
  return out;
}

function verdict(ok: boolean | undefined): string {
  return ok === undefined ? 'not measured' : ok ? 'met' : 'NOT met';
}

function targets(results: RunResults): string[] {
  const byId = new Map(results.cases.map((c) => [c.id, c]));
  const a = byId.get('a');
  const b = byId.get('b');
  const c = byId.get('c');
  const tput = c?.saturation && b?.saturation ? c.saturation.rps / b.saturation.rps : undefined;
  const p50 = c?.fixed && a?.fixed ? c.fixed.p50 - a.fixed.p50 : undefined;
  const p99 = c?.fixed && a?.fixed ? c.fixed.p99 - a.fixed.p99 : undefined;
  const s = results.stream;
  const big = results.checks.find((m) => m.cache)?.runs.find((r) => r.users >= 100_000);
  const check = (v: number | undefined, unit: string, ok: (v: number) => boolean): string =>
    `${v === undefined || !Number.isFinite(v) ? '–' : `${v.toFixed(2)} ${unit}`}: ${verdict(v === undefined || !Number.isFinite(v) ? undefined : ok(v))}`;
  return [
    '## Targets (issue 7)',
    '',
    '| target | this run |',
    '|---|---|',
    `| (c) throughput ≥ 0.5 × (b) | ${check(tput, '×', (v) => v >= 0.5)} |`,
    `| (c) adds ≤ 1 ms p50 over (a) at the fixed rate | ${check(p50, 'ms', (v) => v <= 1)} |`,
    `| (c) adds ≤ 3 ms p99 over (a) at the fixed rate | ${check(p99, 'ms', (v) => v <= 3)} |`,
    `| streaming: median added delay per chunk < 0.3 ms | ${check(s?.addedChunkP50, 'ms', (v) => v < 0.3)} |`,
    `| streaming: added time to first token < 1 ms | ${check(s?.addedTtftP50, 'ms', (v) => v < 1)} |`,
    `| sidecar < 150 MB resident with 100,000 users (peak) | ${check(big === undefined ? undefined : (big.peakMiB * 2 ** 20) / 1e6, 'MB', (v) => v < 150)} |`,
  ];
}

export function renderResults(results: RunResults, optimisations: string): string {
  const m = results.machine;
  const lines = [
    '# Benchmark results',
    '',
    '<!-- Generated by bench/run.ts. Do not edit by hand: run the command below again. -->',
    '',
    `- Date: ${results.date} (run took ${Math.round(results.durationSeconds)} s, profile \`${results.profile}\`)`,
    `- Command: \`${results.command}\``,
    `- Machine: ${m.cpuModel}, ${m.cpus} CPUs, ${m.memory}; Linux ${m.kernel}`,
    `- Load average before / after: ${m.loadBefore} / ${m.loadAfter ?? '–'}`,
    `- Software: Node ${m.node}, Envoy ${m.envoy}, ${m.wrk}, ${m.redis}`,
    `- Settings: ${Object.entries(results.settings)
      .map(([k, v]) => `${k} ${Array.isArray(v) ? v.join('/') : String(v)}`)
      .join(', ')}`,
    '',
    'See docs/benchmarks.md for what each number means and how it is measured.',
    '',
    ...caseTables(results),
    '',
    ...errorTable(results),
    '',
    ...streamTable(results),
    '',
    ...checkTable(results),
    '',
    ...targets(results),
    '',
    optimisations.trim(),
    '',
  ];
  return lines.join('\n');
}
