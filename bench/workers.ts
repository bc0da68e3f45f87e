/**
 * `server.workers` scaling (issue 12): the Check RPC of `tollgate serve` (built: dist/) with 1
 * and with 2 workers, the same configuration otherwise (authentication, one claim rule, a
 * per-user rate limit that never bites, counters in a real redis-server, as more than one
 * worker requires), driven by ghz at saturation over 2 HTTP/2 connections (what Envoy with
 * `--concurrency 2` opens). Rounds alternate 1, 2, 1, 2… and the report gives each round and
 * the medians, the ratio 2 ÷ 1 in the same run, and the CPU of the whole sidecar (primary and
 * workers) per decision. Writes bench/WORKERS.md.
 *
 *   npm run bench:workers [-- --rounds 3] [--seconds 10] [--users 100] [--concurrency 32] [--out FILE] [--smoke]
 *
 * Nothing is pinned: the point is to use both cores. ghz, Redis and the sidecar share the
 * machine's cores, so the ratio is what this machine allows, not what the sidecar would do
 * with cores of its own (docs/benchmarks.md says how to read it).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { RedisServer } from '../test/helpers/redis-server.js';
import { AUTHZ_ONLY, tollgateConfig, UPSTREAM_KEY, UPSTREAM_KEY_ENV } from './configs.js';
import { GHZ_VERSION, ghz, ghzArgs, ghzBinary, percentile, writeData } from './lib/ghz.js';
import { cpuSeconds, median } from './lib/measure.js';
import { ROOT } from './lib/paths.js';
import { terminate } from './lib/sidecar.js';
import { mintMany, startBenchIssuer } from './lib/tokens.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '10' },
    users: { type: 'string', default: '100' },
    concurrency: { type: 'string', default: '32' },
    out: { type: 'string' },
    smoke: { type: 'boolean', default: false },
  },
  strict: true,
});
const smoke = values.smoke === true;
const rounds = smoke ? 1 : Number(values.rounds);
const seconds = smoke ? 1 : Number(values.seconds);
const users = Number(values.users);
const concurrency = Number(values.concurrency);
const warmSeconds = smoke ? 0.5 : 3;
const CONNECTIONS = 2;
const outFile = values.out ?? (smoke ? undefined : join(ROOT, 'bench', 'WORKERS.md'));
const GHZ = ghzBinary('bench:workers');
const MAIN = join(ROOT, 'dist', 'src', 'main.js');

const log = (msg: string): void => void process.stderr.write(`bench:workers: ${msg}\n`);

interface Run {
  workers: number;
  round: number;
  decisionsPerSecond: number;
  p50: number;
  p99: number;
  cpuUs: number;
  /** Sidecar CPU seconds per second of load: how many cores it actually got. */
  cores: number;
  errors: number;
}

/** `pid` and its children (the cluster's workers). */
function family(pid: number): number[] {
  let children: number[] = [];
  try {
    children = execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' })
      .split('\n')
      .map((s) => Number(s.trim()))
      .filter((n) => n > 0);
  } catch {
    // no children
  }
  return [pid, ...children];
}

const cpuOf = (pids: readonly number[]): number => pids.reduce((sum, p) => sum + cpuSeconds(p), 0);

/** `tollgate serve` from dist/, logs to a file; resolves with its gRPC address once started. */
async function startServe(dir: string, config: string): Promise<{ child: ChildProcess; grpc: string }> {
  const configFile = join(dir, 'tollgate.yaml');
  const logFile = join(dir, `serve-${Date.now()}.log`);
  await writeFile(configFile, config);
  const fd = openSync(logFile, 'a');
  const child = spawn(process.execPath, [MAIN, 'serve', '--config', configFile], {
    cwd: ROOT,
    env: { ...process.env, [UPSTREAM_KEY_ENV]: UPSTREAM_KEY },
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  process.once('exit', () => child.kill('SIGKILL'));
  const deadline = Date.now() + 60_000;
  for (;;) {
    const line = readFileSync(logFile, 'utf8')
      .split('\n')
      .find((l) => l.includes('"tollgate started"'));
    if (line !== undefined) return { child, grpc: (JSON.parse(line) as { grpc: string }).grpc };
    if (child.exitCode !== null || Date.now() > deadline)
      throw new Error(`bench:workers: serve did not start:\n${readFileSync(logFile, 'utf8').slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const uptime = (): string => loadavg().map((n) => n.toFixed(2)).join(', ');

const work = await mkdtemp(join(tmpdir(), 'tollgate-bench-workers-'));
const issuer = await startBenchIssuer(work);
const redis = await RedisServer.start();
const loadBefore = uptime();
const runs: Run[] = [];
try {
  const tokens = mintMany(issuer, users + 1);
  const warmFile = await writeData(work, 'warm.json', tokens.slice(users));
  const dataFile = await writeData(work, 'users.json', tokens.slice(0, users));
  for (let round = 1; round <= rounds; round++) {
    for (const workers of [1, 2]) {
      const config = tollgateConfig(issuer, { ...AUTHZ_ONLY, redis: true }, redis.url()).replace(
        '  metrics: 127.0.0.1:0\n',
        `  metrics: 127.0.0.1:0\n  workers: ${workers}\n`,
      );
      const { child, grpc } = await startServe(work, config);
      try {
        if (child.pid === undefined) throw new Error('bench:workers: serve has no pid');
        const pids = family(child.pid);
        // Warm-up over the same two connections: both workers get one and JIT-compile.
        await ghz(GHZ, ghzArgs(grpc, warmFile, ['--concurrency', '8', '--duration', `${warmSeconds}s`], CONNECTIONS));
        const before = cpuOf(pids);
        const report = await ghz(
          GHZ,
          ghzArgs(grpc, dataFile, ['--concurrency', String(concurrency), '--duration', `${seconds}s`], CONNECTIONS),
        );
        const cpu = cpuOf(pids) - before;
        const run: Run = {
          workers,
          round,
          decisionsPerSecond: report.rps,
          p50: percentile(report, 50),
          p99: percentile(report, 99),
          cpuUs: (cpu / Math.max(1, report.count)) * 1e6,
          cores: cpu / (report.total / 1e9),
          errors: report.count - (report.statusCodeDistribution?.OK ?? 0),
        };
        runs.push(run);
        log(
          `round ${round}, ${workers} worker(s): ${Math.round(run.decisionsPerSecond)}/s p50 ${run.p50.toFixed(2)} p99 ${run.p99.toFixed(2)} ms, ${Math.round(run.cpuUs)} µs CPU/decision, ${run.cores.toFixed(2)} cores, ${run.errors} not OK`,
        );
      } finally {
        await terminate(child);
      }
    }
  }
} finally {
  await issuer.close();
  await redis.stop();
  await rm(work, { recursive: true, force: true });
}
const loadAfter = uptime();

const f = (n: number, d = 0): string => (Number.isFinite(n) ? n.toFixed(d) : '–');
const of = (w: number): Run[] => runs.filter((r) => r.workers === w);
const med = (w: number, key: 'decisionsPerSecond' | 'p50' | 'p99' | 'cpuUs' | 'cores'): number => median(of(w).map((r) => r[key]));
const ratio = med(2, 'decisionsPerSecond') / med(1, 'decisionsPerSecond');

const lines = [
  '# Workers benchmark (ghz)',
  '',
  'Generated by `npm run bench:workers`; do not edit. See docs/benchmarks.md.',
  '',
  `\`tollgate serve\` (dist/) with \`server.workers\` 1 and 2, otherwise the same configuration: authentication, one claim rule, a per-user rate limit that never bites, counters in a local redis-server (more than one worker requires it), audit log at info to a file. ghz drives the Check RPC at saturation over ${CONNECTIONS} HTTP/2 connections (what Envoy with 2 threads opens), ${concurrency} calls in flight, ${users} users' tokens in turn, for ${seconds} s after a ${warmSeconds} s warm-up; a fresh sidecar per run, rounds alternating 1 and 2 workers. CPU is the whole sidecar's (primary and workers). Nothing is pinned: ghz, Redis and the sidecar share the machine's cores.`,
  '',
  '| workers | round | decisions/s | p50 ms | p99 ms | sidecar CPU µs/decision | cores the sidecar got | not OK |',
  '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ...runs.map(
    (r) =>
      `| ${r.workers} | ${r.round} | ${f(r.decisionsPerSecond)} | ${f(r.p50, 2)} | ${f(r.p99, 2)} | ${f(r.cpuUs)} | ${f(r.cores, 2)} | ${r.errors} |`,
  ),
  ...[1, 2].map(
    (w) =>
      `| **${w}** | median | **${f(med(w, 'decisionsPerSecond'))}** | ${f(med(w, 'p50'), 2)} | ${f(med(w, 'p99'), 2)} | ${f(med(w, 'cpuUs'))} | ${f(med(w, 'cores'), 2)} | |`,
  ),
  '',
  `**2 workers ÷ 1 worker: ${f(ratio, 2)}×** decisions/s (target ≥ 1.6× when the machine has the cores). "Cores the sidecar got" is its CPU time over the run's duration: below 1 with one worker (or 2 with two), the sidecar was waiting for a core, not for work.`,
  '',
  `Machine: ${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, Node ${process.version}, ghz ${GHZ_VERSION}. Load average (uptime) before: ${loadBefore}; after: ${loadAfter} (the machine is shared: other work shows up here). Date: ${new Date().toISOString()}.`,
  '',
  `Command: \`npm run bench:workers -- --rounds ${rounds} --seconds ${seconds} --users ${users} --concurrency ${concurrency}\``,
  '',
];
const report = lines.join('\n');
if (outFile !== undefined) {
  await writeFile(outFile, report);
  log(`wrote ${outFile}`);
}
process.stdout.write(report);
