/**
 * `server.workers: 2` end to end: `tollgate serve` forks two worker processes on one gRPC
 * port, real Envoy (two threads, so two HTTP/2 connections, one per worker) in front, one real
 * redis-server, the openai SDK as the client.
 * - every request is metered exactly whichever worker decided or metered it: the budget ledger
 *   in Redis equals what the upstream reported, and the primary's `/budget` says the same;
 * - the one `/metrics` reports the sum of both workers;
 * - a configuration change (and SIGHUP) reaches every worker and is counted once;
 * - a worker that dies is logged and forked again, and the sidecar keeps serving;
 * - SIGTERM to the primary drains every worker: a stream in flight finishes and is charged,
 *   and every process exits within the grace period.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import OpenAI from 'openai';
import { Redis } from 'ioredis';
import { budgetKey } from '../../src/budgets/planner.js';
import { periodWindow } from '../../src/budgets/period.js';
import type { RunningEnvoy } from '../../src/stack/envoy.js';
import { baseConfig, withDevs } from '../helpers/e2e.js';
import { childPidsNamed, isRunning } from '../helpers/processes.js';
import { metricValue, scrapeMetrics } from '../helpers/prometheus.js';
import { RedisServer } from '../helpers/redis-server.js';
import { eventually, startEnvoyFor, startServe, type ServeProcess } from '../helpers/serve.js';

const PREFIX = 'workers:';
const TENANT = 'acme';
const GRACE_SECONDS = 10;

describe('e2e: server.workers: 2 — two worker processes on one gRPC port', function () {
  this.timeout(120_000);
  const devs = withDevs();
  let redis: RedisServer | undefined;
  let inspect: Redis | undefined;
  let serve: ServeProcess | undefined;
  let envoy: { envoy: RunningEnvoy; lines: string[] } | undefined;
  let config = '';

  before(async () => {
    redis = await RedisServer.start();
    config = baseConfig({
      issuer: devs.issuer,
      server: `workers: 2, shutdownGraceSeconds: ${GRACE_SECONDS}`,
      extra: `identityHeaders: { x-tenant-id: tenant }
tokenBudgets:
  - { tenant: ${TENANT}, maxTokens: 1000000, period: day }
store:
  redis: { url: ${redis.url()}, timeoutMs: 2000, onUnavailable: closed, keyPrefix: "${PREFIX}" }
`,
    });
    serve = await startServe({ config, env: { TEST_UPSTREAM_KEY: 'sk-test' }, timeoutMs: 60_000 });
    envoy = await startEnvoyFor(config, Number(serve.grpc.split(':').pop()), devs.upstream.url, { concurrency: 2 });
    inspect = new Redis(redis.url(), { lazyConnect: true, maxRetriesPerRequest: 1 });
    await inspect.connect();
  });

  after(async () => {
    inspect?.disconnect();
    await envoy?.envoy.stop();
    await serve?.stop('SIGKILL');
    await redis?.stop();
  });

  const sidecar = (): ServeProcess => {
    if (serve === undefined) throw new Error('serve did not start');
    return serve;
  };
  const ledger = async (): Promise<{ used: number; reserved: number }> => {
    const key = PREFIX + budgetKey({ tenant: TENANT, maxTokens: 1, period: 'day', timeZone: 'UTC' }, periodWindow('day', 'UTC', Date.now()));
    const [used, reserved] = await (inspect as Redis).hmget(key, 'used', 'reserved');
    return { used: Number(used ?? 0), reserved: Number(reserved ?? 0) };
  };
  const audit = (kind: string) => sidecar().logLines().filter((l) => l['audit'] === kind);
  const client = async (user: string) =>
    new OpenAI({
      baseURL: `${envoy?.envoy.url}/v1`,
      apiKey: await devs.issuer.mint({ sub: user, tenant_id: TENANT }),
      maxRetries: 0,
      timeout: 30_000,
    });
  const messages = [{ role: 'user' as const, content: 'hello there' }];

  it('starts two workers on one port and one primary that serves no Check', () => {
    const started = sidecar().logLines().filter((l) => l['msg'] === 'worker started');
    expect(started.map((l) => l['worker']).sort()).to.deep.equal([1, 2]);
    expect(new Set(started.map((l) => l['grpc']))).to.deep.equal(new Set([sidecar().grpc]));
    const primary = sidecar().logLines().find((l) => l['msg'] === 'tollgate started');
    expect(primary).to.include({ workers: 2, grpc: sidecar().grpc });
  });

  it('meters every request exactly across both workers; /budget and /metrics report for both', async () => {
    const before = devs.upstream.reported.length;
    const ledgerBefore = await ledger();
    // Eight clients (eight connections to Envoy, spread over its two threads), 40 requests.
    const clients = await Promise.all(Array.from({ length: 8 }, (_, i) => client(`u${i}`)));
    await Promise.all(
      clients.map(async (c, i) => {
        for (let n = 0; n < 4; n++) {
          const r = await c.chat.completions.create({ model: 'gpt-4o-mini', messages, max_tokens: 20 + i + n });
          expect(r.usage?.total_tokens).to.be.above(0);
        }
        // A stream that did not ask for usage: whichever worker meters it injects and strips it.
        const chunks = [];
        for await (const chunk of await c.chat.completions.create({ model: 'gpt-4o-mini', messages, stream: true })) chunks.push(chunk);
        expect(chunks.filter((ch) => ch.usage)).to.deep.equal([]);
      }),
    );
    const requests = 8 * 5;
    await eventually(() => (audit('usage').length >= requests ? true : undefined), 'every usage line', 15_000);

    const decisions = audit('decision').filter((l) => l['decision'] === 'allow');
    expect(decisions).to.have.length(requests);
    // Both workers decided some of them (Envoy's two connections went one to each).
    const byWorker = (w: number) => decisions.filter((l) => l['worker'] === w).length;
    expect(byWorker(1), 'decided by worker 1').to.be.above(0);
    expect(byWorker(2), 'decided by worker 2').to.be.above(0);
    expect(byWorker(1) + byWorker(2)).to.equal(requests);
    const settled = audit('usage');
    expect(settled).to.have.length(requests);
    expect(settled.every((l) => l['source'] === 'provider' && l['settled'] === true)).to.equal(true);

    // The shared ledger holds exactly what the upstream reported, and nothing stays reserved.
    const upstream = devs.upstream.reported.slice(before).reduce((sum, r) => sum + r.totalTokens, 0);
    const after = await ledger();
    expect(after).to.deep.equal({ used: ledgerBefore.used + upstream, reserved: 0 });

    // The primary answers /budget through a worker, from the same Redis.
    const metricsUrl = sidecar().metricsUrl ?? '';
    const view = (await (await fetch(metricsUrl.replace(/\/metrics$/, `/budget?tenant=${TENANT}`))).json()) as {
      budgets: { used: number; reserved: number }[];
    };
    expect(view.budgets[0]).to.include({ used: after.used, reserved: 0 });

    // One /metrics: the sum over both workers.
    const text = await scrapeMetrics(metricsUrl);
    expect(metricValue(text, 'tollgate_workers')).to.equal(2);
    expect(metricValue(text, 'tollgate_decisions_total', { result: 'allow', reason: 'allowed' })).to.equal(requests);
    const tokens = ['input', 'output'].reduce(
      (sum, type) =>
        sum + (metricValue(text, 'tollgate_usage_tokens_total', { 'tollgate_usage_source': 'provider', 'gen_ai_token_type': type }) ?? 0),
      0,
    );
    expect(tokens).to.equal(after.used);
    expect(metricValue(text, 'tollgate_budget_reservations')).to.equal(0);
    expect(text.match(/^# TYPE tollgate_decisions_total /gm)).to.have.length(1);
  });

  it('hands a configuration change to every worker, counted once; SIGHUP re-reads, never stops', async () => {
    const file = join(sidecar().dir, 'tollgate.yaml');
    // SIGHUP with the file unchanged: nothing to apply, and the primary lives on.
    sidecar().proc.proc.kill('SIGHUP');
    await new Promise((r) => setTimeout(r, 500));
    expect(isRunning(sidecar().proc.proc.pid ?? 0)).to.equal(true);
    const reloaded = () => sidecar().logLines().filter((l) => l['msg'] === 'configuration reloaded');
    expect(reloaded()).to.deep.equal([]);

    // One request per minute for one user, in every worker and shared through Redis.
    await writeFile(
      file,
      `${config}rateLimits:
  - { name: one-per-minute, match: { path: /v1/*, claims: { sub: limited } }, requestsPerUnit: 1, unit: minute, key: user }
`,
    );
    sidecar().proc.proc.kill('SIGHUP');
    await eventually(() => (reloaded().length === 3 ? true : undefined), 'the reload in both workers and the primary');
    expect(reloaded().map((l) => l['worker'] ?? 'primary').sort()).to.deep.equal([1, 2, 'primary']);
    expect(reloaded().find((l) => l['worker'] === undefined)).to.include({ workers: 2 });
    const text = await scrapeMetrics(sidecar().metricsUrl);
    expect(metricValue(text, 'tollgate_config_reloads_total', { result: 'success' })).to.equal(1);

    // Six clients of the same user (six connections, spread over Envoy's threads and so over
    // both workers): exactly one request gets through.
    const statuses = await Promise.all(
      Array.from({ length: 6 }, async (): Promise<number> => {
        const c = await client('limited');
        try {
          await c.chat.completions.create({ model: 'gpt-4o-mini', messages });
          return 200;
        } catch (err) {
          if (err instanceof OpenAI.APIError && typeof err.status === 'number') return err.status;
          throw err;
        }
      }),
    );
    expect(statuses.filter((s) => s === 200)).to.have.length(1);
    expect(statuses.filter((s) => s === 429)).to.have.length(5);
    const limited = audit('decision').filter((l) => l['subject'] === 'limited' && l['reason'] === 'rate_limited');
    expect(limited).to.have.length(5);
  });

  it('forks a worker that died again, logs it, and keeps serving', async () => {
    const primaryPid = sidecar().proc.proc.pid ?? 0;
    const workers = await childPidsNamed(primaryPid, 'node');
    expect(workers).to.have.length(2);
    process.kill(workers[0] ?? 0, 'SIGKILL');
    const died = await eventually(() => sidecar().logLines().find((l) => l['msg'] === 'worker died; restarting it'), 'the restart line');
    expect(died).to.include({ signal: 'SIGKILL', pid: workers[0] });
    await eventually(
      () => (sidecar().logLines().filter((l) => l['msg'] === 'worker started').length === 3 ? true : undefined),
      'the new worker',
      60_000,
    );
    const text = await scrapeMetrics(sidecar().metricsUrl);
    expect(metricValue(text, 'tollgate_worker_restarts_total')).to.equal(1);
    expect(metricValue(text, 'tollgate_workers')).to.equal(2);
    const c = await client('after-restart');
    for (let n = 0; n < 6; n++) await c.chat.completions.create({ model: 'gpt-4o-mini', messages });
  });

  it('on SIGTERM drains every worker: a stream in flight finishes and is charged, all exit in time', async () => {
    const primaryPid = sidecar().proc.proc.pid ?? 0;
    const workers = await childPidsNamed(primaryPid, 'node');
    expect(workers).to.have.length(2);
    const c = await client('streamer');
    const stream = await c.chat.completions.create(
      { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'tell me a long story' }], stream: true },
      { headers: { 'x-dev-chunks': '8', 'x-dev-chunk-delay-ms': '250', 'x-dev-prompt-tokens': '17', 'x-dev-completion-tokens': '29' } },
    );
    const iterator = stream[Symbol.asyncIterator]();
    expect((await iterator.next()).done).to.equal(false);
    const before = await ledger();

    const signalled = Date.now();
    sidecar().proc.proc.kill('SIGTERM');
    let chunks = 1;
    for (let next = await iterator.next(); next.done !== true; next = await iterator.next()) chunks += 1;
    expect(chunks).to.be.at.least(8);

    const exit = await sidecar().proc.waitForExit(GRACE_SECONDS * 1000 + 5000);
    expect(exit.code).to.equal(0);
    expect(Date.now() - signalled).to.be.lessThan(GRACE_SECONDS * 1000 + 3000);
    for (const pid of workers) expect(isRunning(pid), `worker ${pid} still running`).to.equal(false);

    const lines = sidecar().logLines();
    const usage = lines.find((l) => l['audit'] === 'usage' && l['subject'] === 'streamer');
    expect(usage).to.include({ inputTokens: 17, outputTokens: 29, source: 'provider', aborted: false, settled: true, charged: 46 });
    expect(await ledger()).to.deep.equal({ used: before.used + 46, reserved: 0 });
    const stoppedWorkers = lines.filter((l) => l['msg'] === 'worker stopped').map((l) => l['worker']);
    expect(stoppedWorkers.sort()).to.deep.equal([1, 2]);
    const at = (msg: string) => lines.findIndex((l) => l['msg'] === msg);
    expect(at('stopped')).to.be.greaterThan(lines.indexOf(usage ?? {}));
    expect(at('stopped')).to.be.greaterThan(lines.findLastIndex((l) => l['msg'] === 'worker stopped'));
  });
});

describe('e2e: server.workers: 2 — a start that fails', function () {
  this.timeout(60_000);
  const devs = withDevs();

  it('exits 1 with the reason when the workers cannot listen, and leaves no worker behind', async () => {
    const redis = await RedisServer.start();
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as AddressInfo).port;
    try {
      const config = baseConfig({
        issuer: devs.issuer,
        server: 'workers: 2',
        extra: `store:\n  redis: { url: ${redis.url()} }\n`,
      }).replace('grpc: 127.0.0.1:0', `grpc: 127.0.0.1:${port}`);
      const serve = await startServe({ config, env: { TEST_UPSTREAM_KEY: 'sk-test' }, waitStarted: false });
      const exit = await serve.proc.waitForExit(30_000);
      expect(exit.code).to.equal(1);
      expect(serve.output()).to.match(/EADDRINUSE|address already in use/i);
      const failed = serve.logLines().find((l) => l['msg'] === 'workers failed to start');
      expect(String((failed?.['err'] as { message?: string } | undefined)?.message)).to.match(/worker \d exited during start-up/);
      expect(serve.output()).not.to.include('tollgate started');
      // The primary waited for its workers: nothing of this sidecar runs any more.
      const left = await promisify(execFile)('pgrep', ['-f', serve.dir]).then(
        (r) => r.stdout.trim(),
        () => '',
      );
      expect(left, 'processes left').to.equal('');
      await serve.stop();
    } finally {
      taken.close();
      await redis.stop();
    }
  });
});
