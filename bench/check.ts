/**
 * The OPA-Envoy style Check comparison (issue 12): Tollgate's ext_authz Check RPC driven by
 * `ghz` (pinned, built by scripts/install-tools.sh) at saturation and at a steady rate, with
 * one token and with distinct tokens, reporting decisions/s, p50/p99, CPU µs per decision and
 * peak RSS next to the targets. Writes bench/CHECK.md.
 *
 *   npm run bench:check [-- --users 1,10000] [--seconds 10] [--rate 500] [--out FILE] [--smoke]
 *
 * Every scenario gets a fresh sidecar (so its peak RSS is its own, and "fresh tokens" really are
 * first seen), warmed for a few seconds with a token outside the measured set (JIT warm-up
 * without seeding the verified-token cache), and pinned to one core with `taskset` when the
 * machine has it.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { AUTHZ_ONLY, tollgateConfig, UPSTREAM_KEY, UPSTREAM_KEY_ENV } from './configs.js';
import { GHZ_VERSION, ghz, ghzArgs, ghzBinary, percentile, writeData } from './lib/ghz.js';
import { cpuSeconds, memoryMiB } from './lib/measure.js';
import { ROOT } from './lib/paths.js';
import { startSidecar } from './lib/sidecar.js';
import { mintMany, startBenchIssuer, type BenchIssuer } from './lib/tokens.js';

const { values } = parseArgs({
  options: {
    users: { type: 'string', default: '1,10000' },
    seconds: { type: 'string', default: '10' },
    rate: { type: 'string', default: '500' },
    concurrency: { type: 'string', default: '32' },
    out: { type: 'string' },
    smoke: { type: 'boolean', default: false },
    'no-taskset': { type: 'boolean', default: false },
  },
  strict: true,
});

const smoke = values.smoke === true;
const userCounts = values.users.split(',').map((s) => Number(s.trim()));
if (userCounts.some((n) => !Number.isInteger(n) || n < 1))
  throw new Error(`bench:check: --users wants positive integers, got ${values.users}`);
const seconds = smoke ? 1 : Number(values.seconds);
const rate = Number(values.rate);
const concurrency = Number(values.concurrency);
const warmSeconds = smoke ? 0.5 : 3;
const outFile = values.out ?? (smoke ? undefined : join(ROOT, 'bench', 'CHECK.md'));

const GHZ = ghzBinary('bench:check');

/** Issue 12's OPA-Envoy v1.19.1 figures, measured on this machine then; not re-measured here. */
const OPA = {
  rssMiB: '46–49',
  p99OneToken: 2.5,
  p99Fresh: 3.8,
};
/** The targets of issue 12. */
const TARGET = {
  peak10k: 100,
  peak100k: 150,
  idle: 80,
  p99One: 2.5,
  p99Fresh: 4,
  cpuRatio: 1.5,
};

interface Row {
  users: number;
  mode: 'saturated' | 'steady';
  decisionsPerSecond: number;
  p50: number;
  p99: number;
  cpuUs: number;
  idleMiB: number;
  peakMiB: number;
  errors: number;
}

const log = (msg: string): void => void process.stderr.write(`bench:check: ${msg}\n`);

const pinned = values['no-taskset'] !== true && hasTaskset();
function hasTaskset(): boolean {
  try {
    execFileSync('taskset', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
/** The last core: ghz and the benchmark itself are left to the scheduler. */
const core = Math.max(0, cpus().length - 1);

async function scenario(
  issuer: BenchIssuer,
  dir: string,
  warmFile: string,
  dataFile: string,
  users: number,
  mode: Row['mode'],
): Promise<Row> {
  const sidecar = await startSidecar({
    config: tollgateConfig(issuer, AUTHZ_ONLY),
    dir,
    env: { [UPSTREAM_KEY_ENV]: UPSTREAM_KEY },
  });
  try {
    if (pinned) execFileSync('taskset', ['-a', '-p', '-c', String(core), String(sidecar.pid)], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 1000));
    const idleMiB = memoryMiB(sidecar.pid).rss;
    await ghz(GHZ, ghzArgs(sidecar.grpc, warmFile, ['--concurrency', '8', '--duration', `${warmSeconds}s`]));
    const before = cpuSeconds(sidecar.pid);
    const load =
      mode === 'saturated'
        ? ['--concurrency', String(concurrency), '--duration', `${seconds}s`]
        : // Fresh tokens: exactly one pass over the users at the steady rate (each first seen).
          users > 1
          ? ['--concurrency', String(concurrency), '--rps', String(rate), '--total', String(users)]
          : ['--concurrency', String(concurrency), '--rps', String(rate), '--duration', `${seconds}s`];
    const report = await ghz(GHZ, ghzArgs(sidecar.grpc, dataFile, load));
    const cpu = cpuSeconds(sidecar.pid) - before;
    const ok = report.statusCodeDistribution?.OK ?? 0;
    const errors = report.count - ok;
    const row: Row = {
      users,
      mode,
      decisionsPerSecond: report.rps,
      p50: percentile(report, 50),
      p99: percentile(report, 99),
      cpuUs: (cpu / Math.max(1, report.count)) * 1e6,
      idleMiB,
      peakMiB: memoryMiB(sidecar.pid).peak,
      errors,
    };
    log(
      `${users} users ${mode}: ${Math.round(row.decisionsPerSecond)}/s p50 ${row.p50.toFixed(2)} p99 ${row.p99.toFixed(2)} ms, ${Math.round(row.cpuUs)} µs CPU, idle ${row.idleMiB.toFixed(0)} MiB, peak ${row.peakMiB.toFixed(0)} MiB${errors > 0 ? `, ${errors} not OK ${JSON.stringify(report.errorDistribution ?? report.statusCodeDistribution)}` : ''}`,
    );
    return row;
  } finally {
    await sidecar.stop();
  }
}

const uptime = (): string => {
  const [a, b, c] = loadavg();
  return `${a?.toFixed(2)}, ${b?.toFixed(2)}, ${c?.toFixed(2)}`;
};

const work = await mkdtemp(join(tmpdir(), 'tollgate-bench-check-'));
const issuer = await startBenchIssuer(work);
const loadBefore = uptime();
const rows: Row[] = [];
try {
  const maxUsers = Math.max(...userCounts);
  const started = performance.now();
  const tokens = mintMany(issuer, maxUsers + 1);
  log(`minted ${maxUsers + 1} ES256 tokens in ${Math.round(performance.now() - started)} ms`);
  // The warm-up token is user number maxUsers: never one of the measured users.
  const warmFile = await writeData(work, 'warm.json', tokens.slice(maxUsers));
  for (const users of userCounts) {
    const dataFile = await writeData(work, `users-${users}.json`, tokens.slice(0, users));
    for (const mode of ['saturated', 'steady'] as const)
      rows.push(await scenario(issuer, work, warmFile, dataFile, users, mode));
  }
} finally {
  await issuer.close();
  await rm(work, { recursive: true, force: true });
}
const loadAfter = uptime();

const f = (n: number, d = 0): string => (Number.isFinite(n) ? n.toFixed(d) : '–');
const find = (users: number, mode: Row['mode']): Row | undefined =>
  rows.find((r) => r.users === users && r.mode === mode);

function target(r: Row): string {
  const parts: string[] = [];
  if (r.users <= 10_000) parts.push(`peak ≤ ${TARGET.peak10k} MB`);
  else if (r.users <= 100_000) parts.push(`peak < ${TARGET.peak100k} MB`);
  parts.push(`idle ≤ ${TARGET.idle} MB`);
  if (r.mode === 'steady') {
    parts.push(`p99 ≈ ≤ ${r.users === 1 ? TARGET.p99One : TARGET.p99Fresh} ms`);
    const sat = find(r.users, 'saturated');
    if (sat !== undefined)
      parts.push(
        `CPU ≤ ${TARGET.cpuRatio}× saturated (${f(r.cpuUs / sat.cpuUs, 2)}×)`,
      );
  }
  return parts.join(', ');
}

function opa(r: Row): string {
  if (r.mode !== 'steady') return `RSS ${OPA.rssMiB} MB`;
  if (r.users === 1) return `p99 ${OPA.p99OneToken} ms, RSS ${OPA.rssMiB} MB`;
  return `p99 ${OPA.p99Fresh} ms (fresh tokens), RSS ${OPA.rssMiB} MB`;
}

const lines = [
  '# Check benchmark (ghz)',
  '',
  'Generated by `npm run bench:check`; do not edit. See docs/benchmarks.md.',
  '',
  `Tollgate's ext_authz Check (authentication, one claim rule, a per-user rate limit that never bites, memory store, audit log at info to a file) driven by ghz over one HTTP/2 connection, ${concurrency} calls in flight; "steady" is ${rate} Checks/s. With more than one user, the steady run is one pass over the users: every token is seen for the first time (a full ES256 verification). A fresh sidecar per row, warmed ${warmSeconds} s with a token outside the measured set. ${pinned ? `Sidecar pinned to core ${core} with \`taskset\`.` : 'Sidecar not pinned (no taskset).'}`,
  '',
  '| users | load | decisions/s | p50 ms | p99 ms | CPU µs/decision | idle RSS MiB | peak RSS MiB | not OK | target | OPA-Envoy v1.19.1 reference (issue 12, not re-measured) |',
  '| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |',
  ...rows.map(
    (r) =>
      `| ${r.users} | ${r.mode === 'steady' ? `steady ${rate}/s` : 'saturated'} | ${f(r.decisionsPerSecond)} | ${f(r.p50, 2)} | ${f(r.p99, 2)} | ${f(r.cpuUs)} | ${f(r.idleMiB)} | ${f(r.peakMiB)} | ${r.errors} | ${target(r)} | ${opa(r)} |`,
  ),
  '',
  `Machine: ${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, Node ${process.version}, ghz ${GHZ_VERSION}. Load average (uptime) before: ${loadBefore}; after: ${loadAfter} (the machine is shared: other work shows up here). Date: ${new Date().toISOString()}.`,
  '',
  `Command: \`npm run bench:check -- --users ${userCounts.join(',')} --seconds ${seconds} --rate ${rate} --concurrency ${concurrency}${pinned ? '' : ' --no-taskset'}\``,
  '',
];
const report = lines.join('\n');
if (outFile !== undefined) {
  await writeFile(outFile, report);
  log(`wrote ${outFile}`);
}
process.stdout.write(report);
