/**
 * Limits hold across replicas: two `tollgate stack` processes (two Envoys, two sidecars)
 * share one real redis-server. 40 concurrent SDK clients, spread over both Envoys, send 200
 * requests against a limit of 50 per minute; exactly 50 get through, and Redis's counter
 * agrees. A per-pod limiter would admit up to 100 here.
 */
import { expect } from 'chai';
import OpenAI from 'openai';
import type { DevIssuer } from '../../src/dev/issuer.js';
import { bucketKey } from '../../src/limits/rate-limit.js';
import { baseConfig, withDevs, withSharedRedis } from '../helpers/e2e.js';
import { metricValue, scrapeMetrics } from '../helpers/prometheus.js';
import type { RedisServer } from '../helpers/redis-server.js';
import type { StackProcess } from '../helpers/stack.js';

const PREFIX = 'tollgate-replicas:';
const LIMIT = 50;
const CLIENTS = 40;
const REQUESTS = 200;

function configYaml(issuer: DevIssuer, redis: RedisServer): string {
  // A generous timeout: on a loaded 2-core machine a slow event loop must not look like an
  // outage (with `closed` it would turn into 503s and spoil the count).
  return baseConfig({
    issuer,
    extra: `rateLimits:
  - name: shared-limit
    match: { path: /v1/chat/completions, claims: { email: "*@myorg.com" } }
    requestsPerUnit: ${LIMIT}
    unit: minute
    key: tenant
store:
  redis:
    url: ${redis.url()}
    timeoutMs: 2000
    onUnavailable: closed
    keyPrefix: "${PREFIX}"
`,
  });
}

/** The sidecar's `tollgate.ratelimit.hits` counters for `shared-limit`. */
async function rateLimitHits(stack: StackProcess): Promise<{ allowed: number; limited: number }> {
  const text = await scrapeMetrics(stack.ready.metrics);
  const value = (result: string): number =>
    metricValue(text, 'tollgate_ratelimit_hits_total', { limit: 'shared-limit', result }) ?? 0;
  return { allowed: value('allowed'), limited: value('limited') };
}

describe('e2e: one limit shared by two replicas through Redis', function () {
  this.timeout(90000);
  const devs = withDevs();
  const shared = withSharedRedis(devs, (redis) => configYaml(devs.issuer, redis), {
    timeoutMs: 45000,
  });
  const { stacks } = shared;

  it(`admits exactly ${LIMIT} of ${REQUESTS} concurrent requests from ${CLIENTS} clients over both replicas`, async () => {
    // One tenant, 40 users (so the limit, keyed by tenant, is the only thing shared).
    const clients = await Promise.all(
      Array.from({ length: CLIENTS }, async (_, i) => {
        const apiKey = await devs.issuer.mint({
          sub: `u${i}`,
          email: `u${i}@myorg.com`,
          tenant_id: 'acme',
        });
        const stack = stacks[i % 2]!;
        return {
          replica: i % 2,
          sdk: new OpenAI({
            baseURL: `${stack.ready.envoy}/v1`,
            apiKey,
            maxRetries: 0,
            timeout: 30000,
          }),
        };
      }),
    );
    const statuses: { replica: number; status: number; reason: string | null }[] = [];
    await Promise.all(
      clients.map(async ({ replica, sdk }) => {
        for (let n = 0; n < REQUESTS / CLIENTS; n++) {
          try {
            await sdk.chat.completions.create({
              model: 'gpt-4o-mini',
              messages: [{ role: 'user', content: 'hi' }],
            });
            statuses.push({ replica, status: 200, reason: null });
          } catch (err) {
            if (!(err instanceof OpenAI.APIError) || err.status === undefined) throw err;
            statuses.push({
              replica,
              status: err.status,
              reason: err.headers?.get('x-tollgate-reason') ?? null,
            });
          }
        }
      }),
    );

    expect(statuses).to.have.length(REQUESTS);
    const admitted = statuses.filter((s) => s.status === 200);
    const limited = statuses.filter((s) => s.status === 429 && s.reason === 'rate_limited');
    expect(admitted, 'admitted').to.have.length(LIMIT);
    expect(limited, 'rate limited').to.have.length(REQUESTS - LIMIT);
    // Each replica decided its half, and the two sidecars' own counts add up to the same.
    expect(statuses.filter((s) => s.replica === 0)).to.have.length(REQUESTS / 2);
    const hits = await Promise.all(stacks.map((s) => rateLimitHits(s)));
    expect(
      hits.reduce((sum, h) => sum + h.allowed, 0),
      'allowed per the sidecars',
    ).to.equal(LIMIT);
    expect(
      hits.reduce((sum, h) => sum + h.limited, 0),
      'limited per the sidecars',
    ).to.equal(REQUESTS - LIMIT);
    // The one shared counter in Redis says the same, and refusals added nothing to it.
    expect(await shared.inspect.get(PREFIX + bucketKey('shared-limit', 'acme'))).to.equal(
      String(LIMIT),
    );
    const pttl = await shared.inspect.pttl(PREFIX + bucketKey('shared-limit', 'acme'));
    expect(pttl).to.be.within(1, 60000);
  });
});
