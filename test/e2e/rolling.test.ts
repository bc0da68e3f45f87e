/**
 * The data path Envoy Gateway builds for Tollgate as an extension service, with one replica
 * rolled away under traffic (issue 13, item 3). Three `tollgate serve` processes share one real
 * redis-server; real Envoy reaches them through an ext_authz cluster and an ext_proc cluster,
 * each listing all three, round-robin, with EG's active gRPC health check, outlier detection and
 * gRPC retry policy (test/helpers/gateway-envoy.ts). A request's Check and its ext_proc streams
 * land on whichever replicas the balancer picks: the stateless hand-off carries them.
 *
 * Clients (the official openai SDK, no client retries) send streaming and plain chat
 * completions without pause; mid-traffic a fourth replica comes up on an endpoint both clusters
 * listed from the start (failing its health checks until then), takes traffic, and one of the
 * first three gets SIGTERM — a rolling update's surge and termination. Then:
 * - no request fails: Envoy stops sending to the replica once its health turns NOT_SERVING, and
 *   the replica finishes every Check and stream it already has before it exits;
 * - no usage is lost: every request is settled exactly once (one usage line, on some replica),
 *   including the streams the dying replica was metering when the signal came;
 * - the shared budget holds exactly the sum of what the upstream reported, nothing stays
 *   reserved, and the shared admission counter equals the number of requests (no Check was
 *   counted twice by a retry).
 */
import { expect } from 'chai';
import OpenAI from 'openai';
import { Redis } from 'ioredis';
import { budgetKey } from '../../src/budgets/planner.js';
import { periodWindow } from '../../src/budgets/period.js';
import { bucketKey } from '../../src/limits/rate-limit.js';
import type { RunningEnvoy } from '../../src/stack/envoy.js';
import { baseConfig, withDevs } from '../helpers/e2e.js';
import { startGatewayEnvoy } from '../helpers/gateway-envoy.js';
import { freePort, RedisServer } from '../helpers/redis-server.js';
import { eventually, startEnvoyFor, startServe, type ServeProcess } from '../helpers/serve.js';

const PREFIX = 'rolling:';
const TENANT = 'acme';
const REPLICAS = 3;
const CLIENTS = 4;
const GRACE_SECONDS = 10;

type Line = Record<string, unknown>;

describe('e2e: Envoy Gateway data path — three replicas, one rolled away mid-traffic', function () {
  this.timeout(120_000);
  const devs = withDevs();
  let redis: RedisServer | undefined;
  let inspect: Redis | undefined;
  let replicas: ServeProcess[] = [];
  let envoy: RunningEnvoy | undefined;
  let stats = '';
  const envoyLog: string[] = [];
  let config = '';
  /** The port the replacement replica will listen on: in both clusters from the start, down until then. */
  let surgePort = 0;

  before(async () => {
    redis = await RedisServer.start();
    config = baseConfig({
      issuer: devs.issuer,
      server: `shutdownGraceSeconds: ${GRACE_SECONDS}`,
      extra: `rateLimits:
  - { name: admissions, match: { path: /v1/chat/completions }, requestsPerUnit: 1000000, unit: hour, key: tenant }
tokenBudgets:
  - { tenant: ${TENANT}, maxTokens: 100000000, period: day }
store:
  redis: { url: ${redis.url()}, timeoutMs: 2000, onUnavailable: closed, keyPrefix: "${PREFIX}" }
`,
    });
    const env = { TEST_UPSTREAM_KEY: 'sk-test' };
    replicas = await Promise.all(Array.from({ length: REPLICAS }, () => startServe({ config, env })));
    surgePort = await freePort();
    const ports = [...replicas.map((r) => Number(r.grpc.split(':').pop())), surgePort];
    envoy = await startGatewayEnvoy(config, ports, devs.upstream.url, { onLog: (line) => envoyLog.push(line) });
    inspect = new Redis(redis.url(), { lazyConnect: true, maxRetriesPerRequest: 1 });
    await inspect.connect();
  });

  after(async () => {
    inspect?.disconnect();
    await envoy?.stop();
    await Promise.all(replicas.map((r) => r.stop('SIGKILL')));
    await redis?.stop();
  });

  const lines = (r: ServeProcess, audit: string): Line[] => r.logLines().filter((l) => l['audit'] === audit);

  async function clusterStat(name: string): Promise<number> {
    stats = await (await fetch(`${envoy?.adminUrl}/stats?filter=^cluster\\.tollgate`)).text();
    const m = new RegExp(`^${name.replace(/\./g, '\\.')}: (\\d+)$`, 'm').exec(stats);
    return Number(m?.[1] ?? 0);
  }

  it('fails no request, loses no usage and keeps the shared budget exact', async () => {
    const token = await devs.issuer.mint({ sub: 'ann', tenant_id: TENANT });
    const client = new OpenAI({ baseURL: `${envoy?.url}/v1`, apiKey: token, maxRetries: 0, timeout: 30_000 });
    const reportedBefore = devs.upstream.reported.length;
    const messages = [{ role: 'user' as const, content: 'tell me about rolling updates' }];
    const failures: string[] = [];
    let completed = 0;
    let streams = 0;
    let running = true;

    const oneRequest = async (n: number): Promise<void> => {
      if (n % 2 === 0) {
        const headers = { 'x-dev-chunks': '6', 'x-dev-chunk-delay-ms': '60' };
        let chunks = 0;
        let finished = false;
        for await (const chunk of await client.chat.completions.create({ model: 'gpt-4o-mini', messages, stream: true }, { headers })) {
          chunks += 1;
          if (chunk.choices[0]?.finish_reason === 'stop') finished = true;
          expect(chunk.usage ?? null, 'the injected usage chunk is stripped').to.equal(null);
        }
        if (!finished || chunks < 6) throw new Error(`stream ended early after ${chunks} chunks`);
        streams += 1;
      } else {
        const done = await client.chat.completions.create({ model: 'gpt-4o-mini', messages, max_tokens: 40 });
        expect(done.usage?.total_tokens).to.be.above(0);
      }
    };
    const worker = async (id: number): Promise<void> => {
      for (let n = id; running; n++) {
        try {
          await oneRequest(n);
          completed += 1;
        } catch (err) {
          failures.push(err instanceof OpenAI.APIError ? `${err.status} ${err.headers?.get('x-tollgate-reason') ?? ''} ${err.message}` : String(err));
        }
      }
    };
    const traffic = Promise.all(Array.from({ length: CLIENTS }, (_, id) => worker(id)));

    // A rolling update: traffic flows over every replica, a new one comes up (its endpoint was
    // listed, failing its health checks) and takes traffic, then an old one goes.
    const [dying, ...staying] = replicas as [ServeProcess, ...ServeProcess[]];
    await eventually(() => (replicas.every((r) => lines(r, 'usage').length >= 3) ? true : undefined), 'traffic on every replica', 30_000);
    const surge = await startServe({
      config: config.replace('grpc: 127.0.0.1:0', `grpc: 127.0.0.1:${surgePort}`),
      env: { TEST_UPSTREAM_KEY: 'sk-test' },
    });
    replicas.push(surge);
    staying.push(surge);
    await eventually(() => (lines(surge, 'decision').length >= 3 && lines(surge, 'usage').length >= 3 ? true : undefined), 'traffic on the new replica', 30_000);
    const completedAtSignal = completed;
    dying.proc.proc.kill('SIGTERM');
    const exit = await dying.proc.waitForExit(GRACE_SECONDS * 1000 + 5000);
    // Traffic goes on over the two that stay, then stops.
    const completedAtExit = completed;
    await eventually(() => (completed >= completedAtExit + 30 ? true : undefined), 'traffic after the exit', 30_000);
    running = false;
    await traffic;

    // Envoy's access log says what a failed request met (ext_authz_error, ext_proc_error_…).
    const refused = envoyLog.filter((l) => l.startsWith('ACCESS ') && !l.startsWith('ACCESS 200'));
    expect(failures, `failed requests; Envoy: ${refused.join(' | ')}`).to.deep.equal([]);
    expect(exit.code, 'the rolled replica exits cleanly').to.equal(0);
    expect(completed - completedAtSignal).to.be.above(30);
    expect(streams).to.be.above(10);

    // The dying replica drained: it said so, it had work in flight, and it finished all of it.
    const dyingLog = dying.logLines();
    const shuttingDown = dyingLog.findIndex((l) => l['msg'] === 'shutting down');
    expect(shuttingDown, 'shutting down').to.be.above(-1);
    expect(dyingLog.findIndex((l) => l['msg'] === 'stopped')).to.be.above(shuttingDown);
    expect(dyingLog.filter((l) => l['level'] === 50 || l['level'] === 'error')).to.deep.equal([]);
    const settledWhileDraining = dyingLog.slice(shuttingDown).filter((l) => l['audit'] === 'usage');
    expect(settledWhileDraining.length, 'streams metered by the dying replica after SIGTERM').to.be.above(0);
    // Envoy's health check saw NOT_SERVING (or the closed port) and took the replica out.
    expect(await clusterStat('cluster.tollgate.health_check.failure'), stats).to.be.above(0);
    expect(await clusterStat('cluster.tollgate_ext_proc.health_check.failure'), stats).to.be.above(0);

    // Every request admitted once and settled once, somewhere.
    const decisions = replicas.flatMap((r) => lines(r, 'decision'));
    const usage = replicas.flatMap((r) => lines(r, 'usage'));
    expect(decisions.filter((l) => l['decision'] === 'allow')).to.have.length(completed);
    expect(usage).to.have.length(completed);
    expect(usage.filter((l) => l['source'] !== 'provider' || l['settled'] !== true || l['aborted'] === true)).to.deep.equal([]);
    expect(new Set(usage.map((l) => l['requestId']))).to.deep.equal(new Set(decisions.map((l) => l['requestId'])));
    // Check and response really were split across replicas.
    const checkedOn = new Map(replicas.flatMap((r, i) => lines(r, 'decision').map((l) => [l['requestId'], i] as const)));
    const meteredElsewhere = replicas.flatMap((r, i) => lines(r, 'usage').filter((l) => checkedOn.get(l['requestId']) !== i));
    expect(meteredElsewhere.length).to.be.above(0);
    expect(staying.every((r) => lines(r, 'usage').length > 0)).to.equal(true);

    // The shared counters: exactly what the upstream reported, nothing left reserved, and one
    // admission per request.
    const upstream = devs.upstream.reported.slice(reportedBefore);
    expect(upstream).to.have.length(completed);
    const db = inspect as Redis;
    const key = PREFIX + budgetKey({ tenant: TENANT, maxTokens: 1, period: 'day', timeZone: 'UTC' }, periodWindow('day', 'UTC', Date.now()));
    const [used, reserved] = await db.hmget(key, 'used', 'reserved');
    expect({ used: Number(used), reserved: Number(reserved ?? 0) }).to.deep.equal({
      used: upstream.reduce((sum, r) => sum + r.totalTokens, 0),
      reserved: 0,
    });
    expect(await db.get(PREFIX + bucketKey('admissions', TENANT))).to.equal(String(completed));
  });
});

describe('e2e: a stream that outlives the shutdown grace period', function () {
  this.timeout(60_000);
  const devs = withDevs();
  let redis: RedisServer | undefined;
  let inspect: Redis | undefined;
  let serve: ServeProcess | undefined;
  let envoy: { envoy: RunningEnvoy } | undefined;

  after(async () => {
    inspect?.disconnect();
    await envoy?.envoy.stop();
    await serve?.stop('SIGKILL');
    await redis?.stop();
  });

  it('is cut at the end of the grace period and charged (estimated) in Redis before the process exits', async () => {
    redis = await RedisServer.start();
    const config = baseConfig({
      issuer: devs.issuer,
      server: 'shutdownGraceSeconds: 4',
      extra: `tokenBudgets:
  - { tenant: ${TENANT}, maxTokens: 1000000, period: day }
store:
  redis: { url: ${redis.url()}, timeoutMs: 2000, onUnavailable: closed, keyPrefix: "${PREFIX}" }
`,
    });
    serve = await startServe({ config, env: { TEST_UPSTREAM_KEY: 'sk-test' } });
    envoy = await startEnvoyFor(config, Number(serve.grpc.split(':').pop()), devs.upstream.url);
    inspect = new Redis(redis.url(), { lazyConnect: true, maxRetriesPerRequest: 1 });
    await inspect.connect();
    const token = await devs.issuer.mint({ sub: 'ann', tenant_id: TENANT });
    const client = new OpenAI({ baseURL: `${envoy.envoy.url}/v1`, apiKey: token, maxRetries: 0, timeout: 30_000 });

    // 80 chunks, 100 ms apart: eight seconds, twice the grace period.
    const stream = await client.chat.completions.create(
      { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'a long story' }], stream: true },
      { headers: { 'x-dev-chunks': '80', 'x-dev-chunk-delay-ms': '100' } },
    );
    const iterator = stream[Symbol.asyncIterator]();
    expect((await iterator.next()).done).to.equal(false);
    serve.proc.proc.kill('SIGTERM');
    let ended: unknown;
    try {
      while ((await iterator.next()).done !== true);
    } catch (err) {
      ended = err;
    }
    expect(ended, 'the client sees its stream cut').to.be.instanceOf(Error);
    const exit = await serve.proc.waitForExit(10_000);
    expect(exit.code).to.equal(0);

    const lines = serve.logLines();
    const usage = lines.filter((l) => l['audit'] === 'usage');
    expect(usage).to.have.length(1);
    expect(usage[0]).to.include({ settled: true, aborted: true, source: 'estimated' });
    expect(lines.filter((l) => l['level'] === 'error'), JSON.stringify(lines.filter((l) => l['level'] === 'error'))).to.deep.equal([]);
    expect(lines.findIndex((l) => l['msg'] === 'stopped')).to.be.above(lines.indexOf(usage[0] as Line));
    const key = PREFIX + budgetKey({ tenant: TENANT, maxTokens: 1, period: 'day', timeZone: 'UTC' }, periodWindow('day', 'UTC', Date.now()));
    const [used, reserved] = await inspect.hmget(key, 'used', 'reserved');
    expect({ used: Number(used), reserved: Number(reserved ?? 0) }).to.deep.equal({ used: usage[0]?.['totalTokens'], reserved: 0 });
  });
});
