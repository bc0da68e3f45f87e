/**
 * Redis dies mid-run, through real Envoy: for each `onUnavailable` policy a stack with its own
 * redis-server takes steady SDK traffic while Redis is killed (SIGKILL). No request may wait
 * longer than the store timeout plus a margin, the policy's outcome must be what the docs say,
 * and once Redis is back on the same port the shared counters must be used again, which the
 * test proves by writing a counter into Redis itself and watching the sidecar obey it.
 */
import { expect } from 'chai';
import { Redis } from 'ioredis';
import OpenAI from 'openai';
import type { OnUnavailable } from '../../src/config/schema.js';
import type { DevIssuer } from '../../src/dev/issuer.js';
import { bucketKey } from '../../src/limits/rate-limit.js';
import { baseConfig, UPSTREAM_ENV, withDevs } from '../helpers/e2e.js';
import { RedisServer } from '../helpers/redis-server.js';
import { startStack, type StackProcess } from '../helpers/stack.js';

const TIMEOUT_MS = 100;
/** Generous: two cores shared by Envoy, three sidecars, redis and the test itself. */
const MARGIN_MS = 1500;
const LIMIT = 3;
const POLICIES: readonly OnUnavailable[] = ['closed', 'open', 'local'];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function configYaml(issuer: DevIssuer, redis: RedisServer, policy: OnUnavailable): string {
  return baseConfig({
    issuer,
    extra: `rateLimits:
  - name: faults
    match: { path: /v1/chat/completions }
    requestsPerUnit: ${LIMIT}
    unit: minute
store:
  redis: { url: "${redis.url()}", timeoutMs: ${TIMEOUT_MS}, onUnavailable: ${policy}, keyPrefix: "${policy}:" }
`,
  });
}

interface Outcome {
  readonly startedAt: number;
  readonly ms: number;
  readonly status: number;
  readonly headers: Headers;
  readonly error?: InstanceType<typeof OpenAI.APIError>;
}

interface Setup {
  readonly stack: StackProcess;
  readonly redis: RedisServer;
  readonly inspect: Redis;
}

describe('e2e: Redis killed mid-run, per onUnavailable policy', function () {
  this.timeout(60000);
  const devs = withDevs();
  const setups = new Map<OnUnavailable, Setup>();
  /** Everything started, so `after` can stop it even when `before` failed halfway. */
  const started: { stacks: StackProcess[]; servers: RedisServer[]; clients: Redis[] } = {
    stacks: [],
    servers: [],
    clients: [],
  };

  before(async () => {
    await Promise.all(
      POLICIES.map(async (policy) => {
        const redis = await RedisServer.start();
        started.servers.push(redis);
        // The test's own view of Redis; it reconnects by itself after the restart.
        const inspect = new Redis(redis.url(), {
          maxRetriesPerRequest: 1,
          retryStrategy: () => 100,
        });
        inspect.on('error', () => undefined);
        started.clients.push(inspect);
        const stack = await startStack({
          config: configYaml(devs.issuer, redis, policy),
          upstream: devs.upstream.url,
          env: UPSTREAM_ENV,
          timeoutMs: 45000,
        });
        started.stacks.push(stack);
        setups.set(policy, { redis, inspect, stack });
      }),
    );
  });

  after(async () => {
    await Promise.all(started.stacks.map((s) => s.stop()));
    for (const c of started.clients) c.disconnect();
    await Promise.all(started.servers.map((s) => s.stop()));
  });

  /** One SDK chat call as `user`, timed, with its status and headers whatever the outcome. */
  async function call(stack: StackProcess, user: string): Promise<Outcome> {
    const apiKey = await devs.issuer.mint({ sub: user, email: user });
    const sdk = new OpenAI({
      baseURL: `${stack.ready.envoy}/v1`,
      apiKey,
      maxRetries: 0,
      timeout: 10000,
    });
    const startedAt = performance.now();
    try {
      const { response } = await sdk.chat.completions
        .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })
        .withResponse();
      return {
        startedAt,
        ms: performance.now() - startedAt,
        status: response.status,
        headers: response.headers,
      };
    } catch (err) {
      if (
        !(err instanceof OpenAI.APIError) ||
        err.status === undefined ||
        err.headers === undefined
      )
        throw err;
      return {
        startedAt,
        ms: performance.now() - startedAt,
        status: err.status,
        headers: err.headers,
        error: err,
      };
    }
  }

  /**
   * Sends requests as fresh users until one is counted in Redis, then proves the sidecar reads
   * that shared counter: the test fills the user's bucket in Redis and the next request is
   * refused. Returns every outcome it saw.
   */
  async function expectSharedCounters(policy: OnUnavailable, tag: string): Promise<Outcome[]> {
    const { stack, inspect } = setups.get(policy)!;
    const seen: Outcome[] = [];
    const deadline = Date.now() + 15000;
    for (let i = 0; ; i++) {
      const user = `${tag}-${i}@myorg.com`;
      const key = `${policy}:${bucketKey('faults', user)}`;
      const o = await call(stack, user);
      seen.push(o);
      if (o.status === 200 && (await inspect.get(key).catch(() => null)) === '1') {
        expect(o.headers.get('x-ratelimit-remaining-requests')).to.equal(String(LIMIT - 1));
        await inspect.set(key, String(LIMIT), 'PX', 60000);
        const refused = await call(stack, user);
        seen.push(refused);
        expect(refused.status, 'a bucket filled in Redis is obeyed').to.equal(429);
        expect(refused.headers.get('x-tollgate-reason')).to.equal('rate_limited');
        return seen;
      }
      if (Date.now() > deadline)
        throw new Error(`shared counters not in use after 15 s (last status ${o.status})`);
      await sleep(200);
    }
  }

  /** Keeps `workers` clients busy, each request as a fresh user, until `stop()`. */
  function load(stack: StackProcess, tag: string, workers = 3) {
    const outcomes: Outcome[] = [];
    let running = true;
    const done = Promise.all(
      Array.from({ length: workers }, async (_, w) => {
        for (let n = 0; running; n++)
          outcomes.push(await call(stack, `${tag}-${w}-${n}@myorg.com`));
      }),
    );
    return {
      outcomes,
      stop: async () => {
        running = false;
        await done;
      },
    };
  }

  function expectBounded(outcomes: readonly Outcome[]): void {
    const slowest = Math.max(...outcomes.map((o) => o.ms));
    expect(slowest, 'slowest request (ms)').to.be.below(TIMEOUT_MS + MARGIN_MS);
  }

  async function metric(stack: StackProcess, name: string, label: string): Promise<number> {
    const text = await (await fetch(stack.ready.metrics ?? '')).text();
    const line = text.split('\n').find((l) => l.startsWith(name) && l.includes(label));
    return line === undefined ? 0 : Number(line.split(' ').at(-1));
  }

  for (const policy of POLICIES) {
    it(`onUnavailable: ${policy} — bounded latency, the policy's outcome, shared counters after restart`, async () => {
      const { stack, redis } = setups.get(policy)!;
      const all: Outcome[] = [...(await expectSharedCounters(policy, `pre-${policy}`))];

      const traffic = load(stack, `load-${policy}`);
      await sleep(300);
      await redis.kill();
      const killedAt = performance.now();

      // A dedicated user sends more requests than the limit while Redis is down.
      const down: Outcome[] = [];
      for (let i = 0; i < LIMIT + 2; i++) down.push(await call(stack, `down-${policy}@myorg.com`));
      const breaker = await metric(stack, 'tollgate_store_breaker_state', 'state="closed"');
      // Long enough for the breaker to open and let at least one probe through.
      await sleep(Math.max(0, killedAt + 1500 - performance.now()));
      await traffic.stop();
      all.push(...traffic.outcomes, ...down);
      const duringOutage = traffic.outcomes.filter((o) => o.startedAt > killedAt);
      expect(duringOutage.length, 'load requests during the outage').to.be.greaterThan(3);
      expect(breaker, 'breaker not closed while Redis is down').to.equal(0);

      if (policy === 'closed') {
        for (const o of [...down, ...duringOutage]) {
          expect(o.status).to.equal(503);
          expect(o.error).to.be.instanceOf(OpenAI.InternalServerError);
          expect(o.error?.error).to.deep.include({
            type: 'server_error',
            code: 'service_unavailable',
            param: null,
          });
          expect(o.headers.get('retry-after')).to.match(/^\d+$/);
          expect(o.headers.get('x-tollgate-reason')).to.equal('store_unavailable');
        }
      } else if (policy === 'open') {
        // Everything is let through, the limit included, and no count is advertised.
        for (const o of [...down, ...duringOutage]) {
          expect(o.status).to.equal(200);
          expect(o.headers.has('x-ratelimit-remaining-requests')).to.equal(false);
        }
      } else {
        // This replica's own counters: exactly LIMIT for the one user, then 429.
        expect(down.map((o) => o.status)).to.deep.equal([200, 200, 200, 429, 429]);
        expect(
          down.slice(0, LIMIT).map((o) => o.headers.get('x-ratelimit-remaining-requests')),
        ).to.deep.equal(['2', '1', '0']);
        expect(down[LIMIT]?.headers.get('x-tollgate-reason')).to.equal('rate_limited');
        for (const o of duringOutage)
          expect(o.headers.get('x-ratelimit-remaining-requests')).to.equal(String(LIMIT - 1));
      }

      // The outage shows in metrics and logs, with the policy named.
      expect(
        await metric(stack, 'tollgate_store_fallbacks', `policy="${policy}"`),
      ).to.be.greaterThan(0);
      expect(await metric(stack, 'tollgate_store_errors', 'kind=')).to.be.greaterThan(0);
      const circuit = stack.logLines().find((l) => l['msg'] === 'store circuit open');
      expect(circuit, 'a log line when the circuit opens').to.include({ onUnavailable: policy });

      await redis.restart();
      all.push(...(await expectSharedCounters(policy, `post-${policy}`)));
      expect(await metric(stack, 'tollgate_store_breaker_state', 'state="closed"')).to.equal(1);
      expectBounded(all);
    });
  }

  it('a hung Redis (SIGSTOP) costs at most the timeout per request, too', async () => {
    const { stack, redis } = setups.get('closed')!;
    redis.pause();
    try {
      const hung: Outcome[] = [];
      for (let i = 0; i < 4; i++) hung.push(await call(stack, `hung-${i}@myorg.com`));
      expect(hung.map((o) => o.status)).to.deep.equal([503, 503, 503, 503]);
      expectBounded(hung);
    } finally {
      redis.resume();
    }
  });
});
