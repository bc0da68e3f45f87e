/**
 * What one request costs the shared store (issue 13, capacity model): admissions and
 * settlements through the real RedisStore against a real redis-server, at a fixed concurrency,
 * next to the cheapest Redis command (PING) measured in the same run as the baseline. Redis's
 * own CPU per operation (INFO cpu / commandstats) is what bounds one primary; the throughput
 * shows what one sidecar process can drive through one connection. Also measured: the same
 * admission with `waitForReplicas: 1` (a replica attached), and against a 3-primary Cluster.
 * Writes bench/STORE.md.
 *
 *   npm run bench:store [-- --ops 20000 --concurrency 32]
 */
import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { RedisStore, type RedisStoreOptions } from '../src/store/redis.js';
import type { AdmitRequest } from '../src/store/store.js';
import { RedisServer } from '../test/helpers/redis-server.js';
import { BENCH_DIR } from './lib/paths.js';

const { values } = parseArgs({
  options: { ops: { type: 'string', default: '20000' }, concurrency: { type: 'string', default: '32' } },
  strict: true,
});
const OPS = Math.max(100, Number(values.ops));
const CONCURRENCY = Math.max(1, Number(values.concurrency));
const MONTH_END = Date.UTC(2027, 0, 1);

/** A request under `windows` rate limits and `budgets` token budgets, spread over 100 users and 10 tenants. */
function admission(i: number, windows: number, budgets: number): AdmitRequest {
  return {
    windows: Array.from({ length: windows }, (_, w) => ({ key: `rl:limit-${w}:user-${i % 100}`, limit: 1e9, windowMs: 60_000 })),
    budgets: Array.from({ length: budgets }, (_, b) => ({
      key: `tb:budget-${b}:tenant-${i % 10}:2026-12`,
      limit: 1e12,
      amount: 4096,
      minAmount: 4096,
      expiresAtMs: MONTH_END,
    })),
    reservationId: `bench-${i}`,
    ttlMs: 900_000,
  };
}

interface Row {
  readonly name: string;
  readonly opsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Redis CPU (user + sys) per operation, µs: the primary's ceiling is 1e6 / this per core. */
  readonly redisCpuUs: number;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

async function redisCpuSeconds(clients: readonly Redis[]): Promise<number> {
  let total = 0;
  for (const c of clients) {
    const info = await c.info('cpu');
    const read = (name: string) => Number(new RegExp(`^${name}:([0-9.]+)`, 'm').exec(info)?.[1] ?? NaN);
    total += read('used_cpu_user') + read('used_cpu_sys');
  }
  return total;
}

/** Runs `op(i)` OPS times, CONCURRENCY at once; Redis CPU read from `inspect` before and after. */
async function measure(name: string, inspect: readonly Redis[], op: (i: number) => Promise<unknown>): Promise<Row> {
  for (let i = 0; i < 500; i++) await op(OPS + i); // warm-up: scripts loaded, connections up
  const latencies: number[] = [];
  const cpu0 = await redisCpuSeconds(inspect);
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < OPS) {
        const i = next++;
        const s = performance.now();
        await op(i);
        latencies.push(performance.now() - s);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const cpu = (await redisCpuSeconds(inspect)) - cpu0;
  latencies.sort((a, b) => a - b);
  const row = {
    name,
    opsPerSecond: OPS / seconds,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    redisCpuUs: (cpu / OPS) * 1e6,
  };
  process.stdout.write(`${name}: ${Math.round(row.opsPerSecond)}/s, Redis ${row.redisCpuUs.toFixed(1)} µs CPU/op\n`);
  return row;
}

async function connect(port: number): Promise<Redis> {
  const c = new Redis(port, '127.0.0.1', { lazyConnect: true });
  await c.connect();
  return c;
}

const rows: Row[] = [];
const servers: RedisServer[] = [];
const closers: (() => Promise<unknown> | void)[] = [];
try {
  // One primary.
  const primary = await RedisServer.start();
  servers.push(primary);
  const inspect = await connect(primary.port);
  closers.push(() => inspect.disconnect());
  const store = (options: Partial<RedisStoreOptions> = {}) => {
    const s = new RedisStore({ url: primary.url(), timeoutMs: 5000, keyPrefix: 'bench:', ...options });
    closers.push(() => s.close());
    return s;
  };
  const single = store();
  await single.ready(5000);
  const ping = await connect(primary.port);
  closers.push(() => ping.disconnect());
  rows.push(await measure('PING (baseline)', [inspect], () => ping.ping()));
  rows.push(await measure('admit: 1 limit + 1 budget', [inspect], (i) => single.admit(admission(i, 1, 1), Date.now())));
  rows.push(await measure('settle: 1 budget', [inspect], (i) => single.settle(admission(i, 1, 1).budgets, `bench-${i}`, [900], Date.now())));
  rows.push(await measure('admit: 3 limits + 2 budgets', [inspect], (i) => single.admit(admission(i, 3, 2), Date.now())));
  rows.push(await measure('settle: 2 budgets', [inspect], (i) => single.settle(admission(i, 3, 2).budgets, `bench-${i}`, [900, 900], Date.now())));
  rows.push(await measure('admit: rate limit only', [inspect], (i) => single.admit(admission(i, 1, 0), Date.now())));

  // The same primary with a replica, every write acknowledged by it.
  const replica = await RedisServer.start({ args: () => ['--replicaof', '127.0.0.1', String(primary.port)] });
  servers.push(replica);
  const inspectReplica = await connect(replica.port);
  closers.push(() => inspectReplica.disconnect());
  for (let t = 0; t < 100 && !(await inspectReplica.info('replication')).includes('master_link_status:up'); t++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  const waiting = store({ waitForReplicas: 1 });
  await waiting.ready(5000);
  rows.push(
    await measure('admit: 1 + 1, waitForReplicas 1', [inspect, inspectReplica], (i) => waiting.admit(admission(i, 1, 1), Date.now())),
  );

  // A 3-primary Cluster: every key carries one hash tag, so all of it lands on one primary.
  const nodes: RedisServer[] = [];
  for (let n = 0; n < 3; n++) {
    nodes.push(
      await RedisServer.start({ args: (port) => ['--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`] }),
    );
  }
  servers.push(...nodes);
  execFileSync('redis-cli', ['--cluster', 'create', ...nodes.map((s) => `127.0.0.1:${s.port}`), '--cluster-replicas', '0', '--cluster-yes'], {
    stdio: 'ignore',
  });
  const cluster = new RedisStore({ cluster: nodes.map((s) => `127.0.0.1:${s.port}`), timeoutMs: 5000, keyPrefix: 'bench:' });
  closers.push(() => cluster.close());
  for (let t = 0; t < 100; t++) {
    try {
      await cluster.admit(admission(0, 1, 1), Date.now());
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 100)); // the cluster is still agreeing on its slots
    }
  }
  const inspectNodes = await Promise.all(nodes.map((s) => connect(s.port)));
  closers.push(() => inspectNodes.forEach((c) => c.disconnect()));
  rows.push(await measure('admit: 1 + 1, Cluster (3 primaries)', inspectNodes, (i) => cluster.admit(admission(i, 1, 1), Date.now())));
} finally {
  for (const close of closers.reverse()) await close();
  await Promise.all(servers.map((s) => s.stop()));
}

const base = rows[0]!;
const version = execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).trim().replace(/ sha=.*/, '');
const table = [
  '| operation | ops/s | × PING | p50 ms | p99 ms | Redis CPU µs/op | one core\'s ceiling, ops/s |',
  '|---|---:|---:|---:|---:|---:|---:|',
  ...rows.map(
    (r) =>
      `| ${r.name} | ${Math.round(r.opsPerSecond).toLocaleString('en-US')} | ${(r.opsPerSecond / base.opsPerSecond).toFixed(2)}× | ${r.p50Ms.toFixed(2)} | ${r.p99Ms.toFixed(2)} | ${r.redisCpuUs.toFixed(1)} | ${Math.round(1e6 / r.redisCpuUs).toLocaleString('en-US')} |`,
  ),
];
const report = `# Store cost per request

Generated by \`npm run bench:store -- --ops ${OPS} --concurrency ${CONCURRENCY}\` on ${new Date().toISOString().slice(0, 10)};
do not edit. One Node process (the RedisStore Tollgate uses, one connection) drives ${CONCURRENCY}
operations at a time against a local redis-server; PING is the baseline measured in the same run.
"Redis CPU" is the server's own user + system CPU (INFO cpu) per operation, summed over every
node involved (the replica's share for \`waitForReplicas\`; all three primaries for Cluster): a
Redis primary runs commands on one core, so its ceiling is about 10⁶ / that figure per second.
Client and server share the machine's cores, so the ops/s column is a floor, not Redis's limit.

- Machine: ${cpus()[0]?.model ?? 'unknown'}, ${cpus().length} cores; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')} after the run
- Software: Node ${process.version}, ${version}

${table.join('\n')}

Per request with a budget, Tollgate makes one admission (Check) and one settlement (ext_proc,
or the reservation's release when the request never reached OpenAI); see docs/scaling.md.
`;
process.stdout.write(`\n${table.join('\n')}\n`);
await writeFile(join(BENCH_DIR, 'STORE.md'), report);
