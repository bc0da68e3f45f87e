import { expect } from 'chai';
import type { RateLimitConfig } from '../../../src/config/schema.js';
import { admitter } from '../../helpers/unit.js';
import {
  bucketKey,
  RateLimitPlanner,
  type RateLimitOptions,
} from '../../../src/limits/rate-limit.js';
import { classify } from '../../../src/request/endpoint.js';
import type { PlanInput, PlanVerdict } from '../../../src/limits/admit.js';
import type { Identity } from '../../../src/domain/identity.js';
import { MemoryStore } from '../../../src/store/memory.js';
import type { AdmitRequest, AdmitResult, Store, WindowHit } from '../../../src/store/store.js';
import { hitWindows } from '../store/admit-helpers.js';

const T0 = 1_700_000_000_000;

function identity(over: Partial<Identity> = {}): Identity {
  return {
    provider: 'oidc',
    issuer: 'https://idp.test',
    subject: 'sub-1',
    user: 'ann@myorg.com',
    groups: ['eng'],
    tenant: 'marketing',
    claims: { email: 'ann@myorg.com', plan: 'pro', teams: ['red', 'blue'] },
    expiresAt: T0 / 1000 + 3600,
    ...over,
  };
}

function limit(over: Partial<RateLimitConfig> = {}): RateLimitConfig {
  return {
    name: 'user-limit',
    match: { claims: {} },
    requestsPerUnit: 2,
    unit: 'minute',
    key: 'user',
    ...over,
  };
}

function ctx(
  over: { path?: string; model?: string; identity?: Identity; now?: number } = {},
): PlanInput {
  return {
    request: {
      id: 'req-1',
      method: 'POST',
      path: over.path ?? '/v1/chat/completions',
      headers: {},
    },
    identity: over.identity ?? identity(),
    endpoint: classify('POST', over.path ?? '/v1/chat/completions'),
    ...(over.model !== undefined ? { model: over.model } : {}),
    now: over.now ?? T0,
  };
}

/** Records the windows of every admit call. */
function recording(inner: Store = new MemoryStore()): Store & { calls: WindowHit[][] } {
  const calls: WindowHit[][] = [];
  return Object.assign(Object.create(inner) as Store, {
    calls,
    admit(request: AdmitRequest, now: number): Promise<AdmitResult> {
      calls.push([...request.windows]);
      return inner.admit(request, now);
    },
  });
}

/** The rate-limit planner alone, run as the Gateway runs it: through the admission stage. */
function stageOf(
  config: { rateLimits: RateLimitConfig[] },
  store: Store,
  options: RateLimitOptions = {},
): ReturnType<typeof admitter> {
  return admitter([new RateLimitPlanner(config, options)], store);
}

function okHeaders(r: PlanVerdict): Readonly<Record<string, string>> | undefined {
  if (!('ok' in r)) throw new Error(`expected ok, got ${JSON.stringify(r)}`);
  return r.ok.responseHeaders;
}

describe('RateLimitPlanner (through the admission stage)', () => {
  it('lets a request that matches no limit through with no headers and no store call', async () => {
    const store = recording();
    const stage = stageOf(
      { rateLimits: [limit({ match: { path: '/v1/embeddings', claims: {} } })] },
      store,
    );
    expect(await stage.run(ctx())).to.deep.equal({ ok: {} });
    expect(store.calls).to.have.length(0);
  });

  it('counts down in OpenAI header names, then denies with 429 and retry-after', async () => {
    const stage = stageOf({ rateLimits: [limit()] }, new MemoryStore());
    expect(okHeaders(await stage.run(ctx()))).to.deep.equal({
      'x-ratelimit-limit-requests': '2',
      'x-ratelimit-remaining-requests': '1',
      'x-ratelimit-reset-requests': '1m0s',
    });
    expect(
      okHeaders(await stage.run(ctx({ now: T0 + 1500 })))?.['x-ratelimit-remaining-requests'],
    ).to.equal('0');
    const r = await stage.run(ctx({ now: T0 + 30_500 }));
    if (!('deny' in r)) throw new Error('expected a deny');
    expect(r.deny).to.deep.equal({
      status: 429,
      reason: 'rate_limited',
      type: 'requests',
      code: 'rate_limit_exceeded',
      message:
        'Rate limit reached for user-limit on requests per minute: Limit 2. Please try again in 29.5s.',
      headers: {
        'retry-after': '30',
        'x-ratelimit-limit-requests': '2',
        'x-ratelimit-remaining-requests': '0',
        'x-ratelimit-reset-requests': '29.5s',
      },
      rule: 'user-limit',
    });
    // the window started at the first hit, so it is open again a minute later
    expect(
      okHeaders(await stage.run(ctx({ now: T0 + 60_000 })))?.['x-ratelimit-remaining-requests'],
    ).to.equal('1');
  });

  it('keys buckets per user by default', async () => {
    const store = recording();
    const stage = stageOf({ rateLimits: [limit({ requestsPerUnit: 1 })] }, store);
    expect('ok' in (await stage.run(ctx()))).to.equal(true);
    expect(
      'ok' in (await stage.run(ctx({ identity: identity({ user: 'bob@myorg.com' }) }))),
    ).to.equal(true);
    expect('deny' in (await stage.run(ctx()))).to.equal(true);
    expect(store.calls.map((c) => c.map((h) => h.key))).to.deep.equal([
      ['rl:user-limit:ann%40myorg.com'],
      ['rl:user-limit:bob%40myorg.com'],
      ['rl:user-limit:ann%40myorg.com'],
    ]);
  });

  it('applies every matching limit in one store call and advertises the tightest', async () => {
    const store = recording();
    const limits = [
      limit({ name: 'per-user', requestsPerUnit: 10, unit: 'second' }),
      limit({ name: 'per-tenant', requestsPerUnit: 3, unit: 'hour', key: 'tenant' }),
      limit({ name: 'gpt4-only', match: { models: ['gpt-4*'], claims: {} } }),
    ];
    const stage = stageOf({ rateLimits: limits }, store);
    const headers = okHeaders(await stage.run(ctx({ model: 'gpt-3.5-turbo' })));
    expect(store.calls).to.have.length(1);
    expect(store.calls[0]?.map((h) => [h.key, h.limit, h.windowMs])).to.deep.equal([
      ['rl:per-user:ann%40myorg.com', 10, 1000],
      ['rl:per-tenant:marketing', 3, 3_600_000],
    ]);
    expect(headers).to.deep.equal({
      'x-ratelimit-limit-requests': '3',
      'x-ratelimit-remaining-requests': '2',
      'x-ratelimit-reset-requests': '1h0m0s',
    });
  });

  it('a denial by one limit consumes nothing from the others', async () => {
    const store = new MemoryStore();
    const stage = stageOf(
      {
        rateLimits: [
          limit({ name: 'wide', requestsPerUnit: 100 }),
          limit({ name: 'narrow', requestsPerUnit: 1, key: 'tenant' }),
        ],
      },
      store,
    );
    await stage.run(ctx());
    for (let i = 0; i < 3; i += 1) {
      const r = await stage.run(ctx());
      expect('deny' in r && r.deny.rule).to.equal('narrow');
    }
    const wide = await hitWindows(
      store,
      [{ key: bucketKey('wide', 'ann@myorg.com'), limit: 100, windowMs: 60_000 }],
      T0,
    );
    expect(wide.windows[0]?.remaining).to.equal(98);
  });

  it('gives a list key one bucket per value, restricted to the values the limit matches on', async () => {
    const store = recording();
    const stage = stageOf(
      {
        rateLimits: [
          limit({ name: 'per-group', key: 'groups' }),
          limit({ name: 'per-team', key: 'teams', match: { claims: { teams: ['r*'] } } }),
        ],
      },
      store,
    );
    await stage.run(ctx({ identity: identity({ groups: ['eng', 'ml', 'eng'] }) }));
    expect(store.calls[0]?.map((h) => h.key)).to.deep.equal([
      'rl:per-group:eng',
      'rl:per-group:ml',
      'rl:per-team:red',
    ]);
  });

  it('callers without a value for the key share one bucket', async () => {
    const store = recording();
    const stage = stageOf(
      { rateLimits: [limit({ name: 't', key: 'tenant', requestsPerUnit: 1 })] },
      store,
    );
    const noTenant = (user: string): Identity => {
      const { tenant, ...rest } = identity({ user });
      expect(tenant).to.equal('marketing');
      return rest;
    };
    expect('ok' in (await stage.run(ctx({ identity: noTenant('a') })))).to.equal(true);
    expect('deny' in (await stage.run(ctx({ identity: noTenant('b') })))).to.equal(true);
    expect(store.calls[0]?.map((h) => h.key)).to.deep.equal(['rl:t']);
  });

  it('answers 503 store_unavailable with retry-after 1 when the store fails', async () => {
    const broken = Object.assign(new MemoryStore(), {
      admit: (): Promise<AdmitResult> => Promise.reject(new Error('down')),
    });
    const r = await stageOf({ rateLimits: [limit()] }, broken).run(ctx());
    if (!('deny' in r)) throw new Error('expected a deny');
    expect(r.deny).to.include({
      status: 503,
      reason: 'store_unavailable',
      code: 'service_unavailable',
    });
    expect(r.deny.headers).to.deep.equal({ 'retry-after': '1' });
  });

  it('advertises no counts when the store degraded to open, and says so in metadata', async () => {
    const open = Object.assign(new MemoryStore(), {
      admit: (request: AdmitRequest): Promise<AdmitResult> =>
        Promise.resolve({
          allowed: true,
          windows: request.windows.map((h) => ({
            limit: h.limit,
            remaining: h.limit,
            resetMs: h.windowMs,
          })),
          reserved: [],
          remaining: [],
          degraded: 'open',
        }),
    });
    const r = await stageOf({ rateLimits: [limit()] }, open).run(ctx());
    expect(r).to.deep.equal({ ok: { metadata: { rateLimitDegraded: 'open' } } });
  });

  it('encodes bucket keys so names and values cannot collide, and bounds long values', () => {
    expect(bucketKey('a:b', 'c')).to.not.equal(bucketKey('a', 'b:c'));
    expect(bucketKey('a', 'x y')).to.equal('rl:a:x%20y');
    const long = bucketKey('a', 'v'.repeat(500));
    expect(long).to.match(/^rl:a:sha256\.[\w-]{43}$/);
    expect(bucketKey('a', 'w'.repeat(500))).to.not.equal(long);
  });
});
