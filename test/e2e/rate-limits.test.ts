/**
 * Request rate limits end to end: real Envoy + `tollgate stack` (in-memory counters) + the
 * openai SDK. Every limit here is per minute or hour and each test uses its own users, so the
 * windows (which start at a bucket's first hit) never roll over during a run.
 */
import { expect } from 'chai';
import OpenAI from 'openai';
import { baseConfig, withStack } from '../helpers/e2e.js';
import { metricValue, scrapeMetrics } from '../helpers/prometheus.js';

const GO_DURATION = /^(\d+ms|(\d+h)?(\d+m)?\d+(\.\d+)?s)$/;

/** Go duration (as `formatResetDuration` writes it) → milliseconds. */
function durationMs(s: string): number {
  if (s.endsWith('ms')) return Number(s.slice(0, -2));
  const m = /^(?:(\d+)h)?(?:(\d+)m)?([\d.]+)s$/.exec(s);
  if (!m) throw new Error(`not a Go duration: ${s}`);
  return (Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3])) * 1000;
}

const LIMITS = `
rateLimits:
  - name: user-limit
    match:
      path: /v1/chat/completions
      claims: { email: "*@myorg.com" }
    requestsPerUnit: 5
    unit: minute
  - name: tenant-limit
    match: { path: /v1/embeddings }
    requestsPerUnit: 3
    unit: minute
    key: tenant
  - name: team-limit
    match:
      path: /v1/completions
      claims: { groups: "team-*" }
    requestsPerUnit: 2
    unit: minute
    key: groups
  - name: multi-broad
    match: { path: /v1/*, claims: { email: multi@myorg.com } }
    requestsPerUnit: 4
    unit: hour
  - name: per-second
    match: { path: /v1/models, claims: { email: sec@myorg.com } }
    requestsPerUnit: 2
    unit: second
  - name: multi-tight
    match: { path: /v1/responses, claims: { email: multi@myorg.com } }
    requestsPerUnit: 2
    unit: minute
`;

interface Outcome {
  readonly status: number;
  readonly headers: Headers;
  readonly error?: InstanceType<typeof OpenAI.APIError>;
}

/** Runs one SDK call and keeps its status and headers, whether it succeeded or not. */
async function outcome(call: {
  withResponse(): Promise<{ response: Response }>;
}): Promise<Outcome> {
  try {
    const { response } = await call.withResponse();
    return { status: response.status, headers: response.headers };
  } catch (err) {
    if (!(err instanceof OpenAI.APIError) || err.status === undefined || err.headers === undefined)
      throw err;
    return { status: err.status, headers: err.headers, error: err };
  }
}

describe('e2e: request rate limits through real Envoy', function () {
  this.timeout(60000);
  const e2e = withStack((issuer) => baseConfig({ issuer, extra: LIMITS }));

  async function client(claims: Record<string, unknown>): Promise<OpenAI> {
    const apiKey = await e2e.issuer.mint(claims);
    return new OpenAI({
      baseURL: `${e2e.stack.ready.envoy}/v1`,
      apiKey,
      maxRetries: 0,
      timeout: 10000,
    });
  }
  const chat = (c: OpenAI) =>
    outcome(
      c.chat.completions.create({
        model: 'gpt-4o-mini',
        messages: [{ role: 'user', content: 'hi' }],
      }),
    );
  const embed = (c: OpenAI) =>
    outcome(c.embeddings.create({ model: 'text-embedding-3-small', input: 'hi' }));
  const complete = (c: OpenAI) =>
    outcome(c.completions.create({ model: 'gpt-4o-mini', prompt: 'hi' }));
  const respond = (c: OpenAI) => outcome(c.responses.create({ model: 'gpt-4o-mini', input: 'hi' }));
  const remaining = (o: Outcome) => o.headers.get('x-ratelimit-remaining-requests');

  it('admits exactly 5 of a 5-per-minute limit, counting down, and answers the 6th with 429', async () => {
    const alice = await client({ sub: 'alice', email: 'alice@myorg.com' });
    const reached = e2e.upstream.received.length;
    const allowed: Outcome[] = [];
    for (let i = 0; i < 5; i++) allowed.push(await chat(alice));
    expect(allowed.map((o) => o.status)).to.deep.equal([200, 200, 200, 200, 200]);
    expect(allowed.map(remaining)).to.deep.equal(['4', '3', '2', '1', '0']);
    for (const o of allowed) {
      expect(o.headers.get('x-ratelimit-limit-requests')).to.equal('5');
      const reset = o.headers.get('x-ratelimit-reset-requests') ?? '';
      expect(reset).to.match(GO_DURATION);
      expect(durationMs(reset)).to.be.within(1, 60000);
    }

    const denied = await chat(alice);
    expect(denied.status).to.equal(429);
    expect(denied.error).to.be.instanceOf(OpenAI.RateLimitError);
    expect(denied.error?.error).to.deep.include({
      type: 'requests',
      code: 'rate_limit_exceeded',
      param: null,
    });
    expect(denied.error?.message).to.contain('user-limit');
    expect(denied.headers.get('content-type')).to.equal('application/json');
    expect(denied.headers.get('x-tollgate-reason')).to.equal('rate_limited');
    expect(denied.headers.get('retry-after')).to.match(/^\d+$/);
    expect(Number(denied.headers.get('retry-after'))).to.be.within(1, 60);
    expect(denied.headers.get('x-ratelimit-limit-requests')).to.equal('5');
    expect(remaining(denied)).to.equal('0');
    expect(denied.headers.get('x-ratelimit-reset-requests')).to.match(GO_DURATION);
    // retry-after is the reset rounded up to whole seconds.
    expect(Number(denied.headers.get('retry-after'))).to.equal(
      Math.max(
        1,
        Math.ceil(durationMs(denied.headers.get('x-ratelimit-reset-requests') ?? '') / 1000),
      ),
    );
    expect(e2e.upstream.received.length - reached, 'requests that reached the upstream').to.equal(
      5,
    );

    // Another user of the same limit has a bucket of their own.
    const bobClient = await client({ sub: 'bob', email: 'bob@myorg.com' });
    const bob = await chat(bobClient);
    expect(bob.status).to.equal(200);
    expect(remaining(bob)).to.equal('4');
    // A streamed response carries the headers too.
    const { data: stream, response } = await bobClient.chat.completions
      .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], stream: true })
      .withResponse();
    for await (const chunk of stream) void chunk;
    expect(response.headers.get('x-ratelimit-remaining-requests')).to.equal('3');
    // A caller the limit does not match is not limited and gets no rate-limit headers.
    const eve = await chat(await client({ sub: 'eve', email: 'eve@elsewhere.org' }));
    expect(eve.status).to.equal(200);
    expect(eve.headers.has('x-ratelimit-limit-requests')).to.equal(false);
  });

  it('keys a limit by tenant: users of one tenant share it, another tenant is unaffected', async () => {
    const ann = await client({ sub: 'ann', email: 'ann@myorg.com', tenant_id: 'marketing' });
    const ben = await client({ sub: 'ben', email: 'ben@myorg.com', tenant_id: 'marketing' });
    const cat = await client({ sub: 'cat', email: 'cat@myorg.com', tenant_id: 'finance' });
    const seen = [await embed(ann), await embed(ben), await embed(ann), await embed(ben)];
    expect(seen.map((o) => o.status)).to.deep.equal([200, 200, 200, 429]);
    expect(seen.slice(0, 3).map(remaining)).to.deep.equal(['2', '1', '0']);
    expect(seen[3]?.error).to.be.instanceOf(OpenAI.RateLimitError);
    expect(seen[3]?.error?.message).to.contain('tenant-limit');
    const finance = await embed(cat);
    expect(finance.status).to.equal(200);
    expect(remaining(finance)).to.equal('2');
  });

  it('keys a limit by group: members of a team share its bucket, a member of two teams draws on both', async () => {
    const a1 = await client({ sub: 'a1', email: 'a1@myorg.com', groups: ['team-a', 'eng'] });
    const a2 = await client({ sub: 'a2', email: 'a2@myorg.com', groups: ['team-a'] });
    const b1 = await client({ sub: 'b1', email: 'b1@myorg.com', groups: ['team-b'] });
    const both = await client({ sub: 'ab', email: 'ab@myorg.com', groups: ['team-b', 'team-c'] });
    const nogroup = await client({ sub: 'ng', email: 'ng@myorg.com', groups: ['eng'] });

    expect((await complete(a1)).status).to.equal(200);
    expect((await complete(a2)).status).to.equal(200);
    const full = await complete(a1);
    expect(full.status).to.equal(429);
    expect(full.error?.message).to.contain('team-limit');
    expect((await complete(a2)).status, 'team-a is shared by a1 and a2').to.equal(429);

    // team-b: b1 takes one; `both` takes one from team-b and team-c; team-b is then full.
    expect(remaining(await complete(b1))).to.equal('1');
    const ab = await complete(both);
    expect(ab.status).to.equal(200);
    expect(remaining(ab), 'the tightest of team-b (0) and team-c (1)').to.equal('0');
    expect((await complete(both)).status).to.equal(429);
    expect((await complete(b1)).status).to.equal(429);
    // Refused by team-b, the request took nothing from team-c.
    const c1 = await complete(
      await client({ sub: 'c1', email: 'c1@myorg.com', groups: ['team-c'] }),
    );
    expect(remaining(c1)).to.equal('0');
    // `eng` is not a team-* group, so the limit does not match that caller at all.
    expect((await complete(nogroup)).headers.has('x-ratelimit-limit-requests')).to.equal(false);
  });

  it('applies several matching limits at once, reports the tightest, and a refusal consumes from none', async () => {
    const multi = await client({ sub: 'multi', email: 'multi@myorg.com' });
    // multi-broad (4/hour) and multi-tight (2/minute) both match /v1/responses.
    const first = await respond(multi);
    expect(first.status).to.equal(200);
    expect(first.headers.get('x-ratelimit-limit-requests')).to.equal('2');
    expect(remaining(first)).to.equal('1');
    expect(durationMs(first.headers.get('x-ratelimit-reset-requests') ?? '')).to.be.at.most(60000);
    expect(remaining(await respond(multi))).to.equal('0');
    const refused = await respond(multi);
    expect(refused.status).to.equal(429);
    expect(refused.error?.message).to.contain('multi-tight');
    // Only multi-broad matches /v1/models: 2 of its 4 were used, the refused request took none.
    const models = await outcome(multi.models.list());
    expect(models.status).to.equal(200);
    expect(models.headers.get('x-ratelimit-limit-requests')).to.equal('4');
    expect(remaining(models)).to.equal('1');
    expect(durationMs(models.headers.get('x-ratelimit-reset-requests') ?? '')).to.be.above(
      59 * 60 * 1000,
    );
  });

  it('starts a new window once the advertised reset has passed', async () => {
    const sec = await client({ sub: 'sec', email: 'sec@myorg.com' });
    const first = await outcome(sec.models.list());
    expect(remaining(first)).to.equal('1');
    // The window opened with this bucket's first request and lasts one unit (a second).
    expect(durationMs(first.headers.get('x-ratelimit-reset-requests') ?? '')).to.be.within(1, 1000);
    const second = await outcome(sec.models.list());
    expect(remaining(second)).to.equal('0');
    await new Promise((r) =>
      setTimeout(r, durationMs(second.headers.get('x-ratelimit-reset-requests') ?? '') + 50),
    );
    const fresh = await outcome(sec.models.list());
    expect(fresh.status).to.equal(200);
    expect(remaining(fresh), 'a new window, full again').to.equal('1');
  });

  it('exports rate-limit outcomes per limit as metrics', async () => {
    const text = await scrapeMetrics(e2e.stack.ready.metrics);
    const value = (limit: string, result: string): number =>
      metricValue(text, 'tollgate_ratelimit_hits_total', { limit, result }) ?? 0;
    expect(value('user-limit', 'allowed')).to.be.at.least(6);
    expect(value('user-limit', 'limited')).to.be.at.least(1);
    expect(value('multi-tight', 'limited')).to.equal(1);
    // The store breaker gauge only exists with store.redis.
    expect(text).not.to.contain('tollgate_store_breaker_state');
  });
});
