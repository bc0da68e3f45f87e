/**
 * `explain` tells the truth: the same requests through real Envoy + `tollgate stack` (Redis
 * store) and through the explain engine (cli/explain.ts, counters read from the same Redis)
 * give the same decision, status, x-tollgate-reason, deny envelope, deciding rule, shadow rule
 * and identity headers, and the same model list — for paths, methods, models, claims, a rate
 * limit, a budget and a shadow rule (which `tollgate shadow` then reports from /metrics). Each
 * request is explained first, then sent: explain reads the counters as the live Check is about
 * to find them.
 */
import { expect } from 'chai';
import { parseConfig } from '../../src/config/load.js';
import { DevIssuer } from '../../src/dev/issuer.js';
import { DevUpstream } from '../../src/dev/upstream.js';
import { Explainer, REDACTED_KEY, type Explanation } from '../../src/cli/explain.js';
import { shadowCommand, type ShadowReport } from '../../src/cli/shadow.js';
import { RedisStore } from '../../src/store/redis.js';
import { AUDIENCE, UPSTREAM_ENV } from '../helpers/e2e.js';
import { RedisServer } from '../helpers/redis-server.js';
import { startStack, type StackProcess } from '../helpers/stack.js';

const PREFIX = 'parity:';

function configYaml(issuer: DevIssuer, redis: RedisServer): string {
  return `
server: { grpc: 127.0.0.1:0, metrics: 127.0.0.1:0 }
authentication:
  - provider:
      name: idp
      issuer: ${issuer.url}
      clientId: ${AUDIENCE}
      claims: { user: email, groups: groups, tenant: team }
upstream:
  apiKey: { env: TEST_UPSTREAM_KEY }
  tenants:
    roomy: { apiKey: { env: TEST_UPSTREAM_KEY }, project: proj_roomy, organization: org-roomy }
    tiny: { apiKey: { env: TEST_UPSTREAM_KEY } }
identityHeaders:
  x-user-id: user
  x-tenant-id: tenant
  x-user-groups: groups
authorization:
  default: deny
  rules:
    - name: anyone-lists-models
      match: { path: /v1/models*, methods: [GET] }
      action: allow
    - name: trial-no-gpt41
      match: { models: ["gpt-4.1*"] }
      action: deny
      mode: shadow
    - name: no-deletes
      match: { path: /v1/*, methods: [DELETE] }
      action: deny
    - name: ml-may-reason
      match: { path: /v1/chat/completions, models: ["o3*"], claims: { groups: ml } }
      action: allow
    - name: nobody-else-reasons
      match: { models: ["o3*"] }
      action: deny
    - name: no-embeddings-for-contractors
      match: { path: /v1/embeddings, claims: { email: "*@contractors.example" } }
      action: deny
    - name: staff
      match: { path: /v1/*, claims: { groups: [ml, staff] } }
      action: allow
rateLimits:
  - name: two-a-day
    match: { path: /v1/chat/completions }
    requestsPerUnit: 2
    unit: day
    key: user
tokenBudgets:
  - { tenant: tiny, maxTokens: 5, period: month }
  - { tenant: roomy, maxTokens: 1000000, period: month }
store:
  redis: { url: "${redis.url()}", keyPrefix: "${PREFIX}" }
`;
}

/** A deny envelope with its "try again in 23h59m59.949s" made time-free (the two run ms apart). */
function untimed(body: unknown): unknown {
  return JSON.parse(JSON.stringify(body).replace(/in (\d+h)?(\d+m)?[\d.]+s\b/g, 'in <time>')) as unknown;
}

interface Live {
  status: number;
  reason: string | null;
  body: unknown;
  /** The headers the upstream received (an allow), lower-case. */
  upstream?: Record<string, string>;
  audit: Record<string, unknown>;
}

describe('e2e: explain gives the decision real Envoy gives', function () {
  this.timeout(60000);
  let issuer: DevIssuer;
  let upstream: DevUpstream;
  let redis: RedisServer;
  let stack: StackProcess;
  let counters: RedisStore;
  let explainer: Explainer;

  before(async () => {
    [issuer, upstream, redis] = await Promise.all([
      DevIssuer.start({ audience: AUDIENCE }),
      DevUpstream.start(),
      RedisServer.start(),
    ]);
    const yaml = configYaml(issuer, redis);
    stack = await startStack({ config: yaml, upstream: upstream.url, env: { ...UPSTREAM_ENV } });
    counters = new RedisStore({ url: redis.url(), timeoutMs: 2000, keyPrefix: PREFIX });
    await counters.ready(2000);
    explainer = new Explainer(parseConfig(yaml, stack.configPath), { counters });
  });

  after(async () => {
    await counters?.close();
    await stack?.stop();
    await Promise.all([issuer?.close(), upstream?.close()]);
    await redis?.stop();
  });

  const decisionLines = (): Record<string, unknown>[] => stack.logLines().filter((l) => l['audit'] === 'decision');

  /**
   * The decision line the stack wrote after `seen` lines (Envoy gives each outside request its
   * own x-request-id, so the line is found by order: requests are sent one at a time).
   */
  async function auditLine(seen: number): Promise<Record<string, unknown>> {
    for (let i = 0; i < 100; i++) {
      const lines = decisionLines();
      if (lines.length > seen) {
        expect(lines.length, 'one decision line per request').to.equal(seen + 1);
        return lines[seen] ?? {};
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error('no audit decision line for the request');
  }

  async function live(method: string, path: string, token: string | undefined, body: string | undefined): Promise<Live> {
    const before = upstream.received.length;
    const seen = decisionLines().length;
    const res = await fetch(`${stack.ready.envoy}${path}`, {
      method,
      headers: {
        ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body } : {}),
    });
    const text = await res.text();
    const received = upstream.received.length > before ? upstream.received.at(-1) : undefined;
    return {
      status: res.status,
      reason: res.headers.get('x-tollgate-reason'),
      body: res.headers.get('content-type') === 'application/json' && res.status >= 400 ? (JSON.parse(text) as unknown) : undefined,
      ...(received !== undefined ? { upstream: received.headers } : {}),
      audit: await auditLine(seen),
    };
  }

  /** Explains, then sends the same request, and checks the two agree; returns the explanation. */
  async function same(req: { method?: string; path?: string; token?: string; model?: string; body?: unknown }): Promise<Explanation> {
    const method = req.method ?? 'POST';
    const path = req.path ?? '/v1/chat/completions';
    const body =
      req.body !== undefined ? JSON.stringify(req.body) : req.model !== undefined ? JSON.stringify({ model: req.model, messages: [{ role: 'user', content: 'hi' }] }) : undefined;
    const explained = await explainer.explain({
      caller: req.token !== undefined ? { token: req.token } : { anonymous: true },
      method,
      path,
      ...(body !== undefined ? { body } : {}),
    });
    const got = await live(method, path, req.token, body);
    const what = `${method} ${path} ${body ?? ''}`;
    expect(explained.status, what).to.equal(got.status);
    expect(explained.decision, what).to.equal(got.audit['decision']);
    expect(explained.reason, what).to.equal(got.audit['reason']);
    expect(explained.rule ?? null, what).to.equal(got.audit['rule'] ?? null);
    expect(explained.shadowDenied ?? null, what).to.deep.equal(got.audit['shadowDenied'] ?? null);
    if (explained.decision === 'deny') {
      expect(got.reason, what).to.equal(explained.reason);
      expect(explained.response?.headers['x-tollgate-reason']).to.equal(got.reason);
      expect(untimed(got.body), what).to.deep.equal(untimed(explained.response?.body));
      expect(got.upstream, `${what}: a denial never reaches the upstream`).to.equal(undefined);
    } else {
      expect(got.upstream, `${what}: an allow reaches the upstream`).to.not.equal(undefined);
      const headers = got.upstream ?? {};
      const identity = Object.entries(explained.upstreamHeaders).filter(([k]) => k !== 'authorization');
      expect(identity.length, what).to.be.above(0);
      for (const [k, v] of identity) expect(headers[k], `${what}: header ${k}`).to.equal(v);
      expect(explained.upstreamHeaders['authorization']).to.equal(`Bearer ${REDACTED_KEY}`);
      expect(headers['authorization']).to.equal(`Bearer ${UPSTREAM_ENV['TEST_UPSTREAM_KEY'] ?? ''}`);
    }
    return explained;
  }

  const mint = (claims: Record<string, unknown>): Promise<string> => issuer.mint(claims);

  it('no token, and a caller no rule lets in (the default)', async () => {
    expect((await same({ model: 'gpt-4o-mini' })).reason).to.equal('missing_token');
    const sales = await mint({ sub: 's1', email: 'sam@acme.test', groups: ['sales'] });
    expect((await same({ token: sales, model: 'gpt-4o-mini' })).rule).to.equal('default');
  });

  it('paths and methods', async () => {
    const staff = await mint({ sub: 'p1', email: 'pat@acme.test', groups: ['staff'], team: 'roomy' });
    expect((await same({ token: staff, method: 'GET', path: '/v1/models' })).rule).to.equal('anyone-lists-models');
    expect((await same({ token: staff, method: 'DELETE', path: '/v1/files/file-1' })).rule).to.equal('no-deletes');
    expect((await same({ token: staff, path: '/v1/embeddings', body: { model: 'text-embedding-3-small', input: 'x' } })).decision).to.equal('allow');
    expect((await same({ token: staff, path: '/v2/elsewhere', body: { model: 'gpt-4o' } })).decision).to.equal('deny');
  });

  it('the model list: explain lists what the live /v1/models lists', async () => {
    const listed = async (url: string, token?: string): Promise<string[]> => {
      const res = await fetch(`${url}/v1/models`, token !== undefined ? { headers: { authorization: `Bearer ${token}` } } : {});
      expect(res.status).to.equal(200);
      return ((await res.json()) as { data: { id: string }[] }).data.map((m) => m.id).sort();
    };
    // The candidates are the upstream's own list, as the live sidecar filters it.
    const all = await listed(upstream.url);
    const withUpstreamList = new Explainer(explainer.config, { counters, candidateModels: all });
    const lists = new Set<string>();
    for (const groups of [['staff'], ['ml'], ['sales']]) {
      const token = await mint({ sub: `l-${groups[0] ?? ''}`, email: 'list@acme.test', groups });
      const live = await listed(stack.ready.envoy, token);
      const explained = await withUpstreamList.explain({ caller: { token }, method: 'GET', path: '/v1/models' });
      expect([...(explained.models ?? [])].sort(), groups.join()).to.deep.equal(live);
      lists.add(JSON.stringify(live));
    }
    expect(lists.size, 'the three callers see three different lists').to.equal(3);
    expect(all.some((m) => m.startsWith('o3'))).to.equal(true, 'the upstream lists a model some callers may not use');
  });

  it('models and claims (identity headers and the tenant project included)', async () => {
    const ml = await mint({ sub: 'm1', email: 'ada@acme.test', groups: ['ml', 'eng'], team: 'roomy' });
    const allowed = await same({ token: ml, model: 'o3-mini' });
    expect(allowed.rule).to.equal('ml-may-reason');
    expect(allowed.upstreamHeaders).to.include({ 'x-user-id': 'ada@acme.test', 'x-tenant-id': 'roomy', 'openai-project': 'proj_roomy' });
    const staff = await mint({ sub: 'p2', email: 'pia@acme.test', groups: ['staff'], team: 'roomy' });
    expect((await same({ token: staff, model: 'o3-mini' })).reason).to.equal('model_not_allowed');
    const contractor = await mint({ sub: 'c1', email: 'cy@contractors.example', groups: ['staff'] });
    expect((await same({ token: contractor, path: '/v1/embeddings', body: { model: 'text-embedding-3-small', input: 'x' } })).rule).to.equal(
      'no-embeddings-for-contractors',
    );
  });

  it('a shadow rule records, does not decide', async () => {
    const staff = await mint({ sub: 'p3', email: 'pol@acme.test', groups: ['staff'], team: 'roomy' });
    const e = await same({ token: staff, model: 'gpt-4.1' });
    expect(e.decision).to.equal('allow');
    expect(e.shadowDenied?.rule).to.equal('trial-no-gpt41');
    // ... and `tollgate shadow` reports it from the sidecar's /metrics.
    let out = '';
    const code = await shadowCommand(['--url', stack.ready.metrics ?? '', '--json'], { write: (s: string) => (out += s) }, { write: () => true });
    expect(code).to.equal(0);
    expect((JSON.parse(out) as ShadowReport).rules).to.deep.equal([{ rule: 'trial-no-gpt41', reason: 'model_not_allowed', wouldDeny: 1 }]);
  });

  it('a rate limit, counted by the live requests and read by explain', async () => {
    const staff = await mint({ sub: 'p4', email: 'lim@acme.test', groups: ['staff'], team: 'roomy' });
    expect((await same({ token: staff, model: 'gpt-4o-mini' })).decision).to.equal('allow');
    expect((await same({ token: staff, model: 'gpt-4o-mini' })).decision).to.equal('allow');
    const third = await same({ token: staff, model: 'gpt-4o-mini' });
    expect([third.status, third.reason]).to.deep.equal([429, 'rate_limited']);
  });

  it('a budget', async () => {
    const tiny = await mint({ sub: 't1', email: 'tim@acme.test', groups: ['staff'], team: 'tiny' });
    const refused = await same({ token: tiny, path: '/v1/embeddings', body: { model: 'text-embedding-3-small', input: 'a longer input than five tokens can hold, surely' } });
    expect(refused.status).to.equal(429);
    expect(refused.limits.some((l) => l.kind === 'budget' && l.refused)).to.equal(true);
  });
});
