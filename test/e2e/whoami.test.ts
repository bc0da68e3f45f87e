/**
 * `GET /v1/tollgate/whoami` and `tollgate whoami` end to end: real Envoy + `tollgate stack`, the
 * dev issuer and upstream, the official openai SDK for the model calls. The sidecar answers the
 * path itself after verifying the token (Envoy sends its 200 "denied" reply unchanged), shows
 * exactly what the ledger and the rate-limit windows hold for that caller and nobody else, and
 * counts nothing: the numbers do not move between two asks and nothing reaches the upstream.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import OpenAI from 'openai';
import type { MeView } from '../../src/check/me.js';
import type { BudgetView } from '../../src/budgets/view.js';
import { DevIssuer } from '../../src/dev/issuer.js';
import { DEMO_AUDIENCE } from '../../src/dev/demo-config.js';
import { baseConfig, UPSTREAM_ENV, withDevs, withSharedRedis, withStack } from '../helpers/e2e.js';
import { ROOT, SOURCE_CLI, startStack, type StackProcess } from '../helpers/stack.js';

const exec = promisify(execFile);

const EXTRA = `
authorization:
  default: deny
  rules:
    - name: contractors-out
      match: { claims: { groups: [contractors] } }
      action: deny
    - name: staff-models
      match: { path: /v1/chat/completions, models: [gpt-4o-mini, gpt-4o], claims: { email: "*@myorg.com" } }
      action: allow
rateLimits:
  - { name: per-user, match: { path: "/v1/*" }, requestsPerUnit: 50, unit: minute }
  - name: team-chat
    match: { path: /v1/chat/completions, claims: { groups: "team-*" } }
    requestsPerUnit: 10
    unit: hour
    key: groups
tokenBudgets:
  - { tenant: acme, maxTokens: 100000, period: month }
  - { user: alice@myorg.com, maxTokens: 50000, period: day }
  - { tenant: globex, maxTokens: 7000, period: month }
`;

const ALICE = { email: 'alice@myorg.com', groups: ['team-a'], tenant_id: 'acme' };
const BOB = { email: 'bob@other.example', groups: ['contractors'], tenant_id: 'globex' };

interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
}

describe('e2e: whoami through real Envoy', function () {
  this.timeout(90_000);
  const e2e = withStack((issuer) => baseConfig({ issuer, extra: EXTRA }));
  let alice = '';
  let bob = '';
  let home = '';

  const whoamiPath = () => `${e2e.stack.ready.envoy}/v1/tollgate/whoami`;
  async function ask(token: string | undefined): Promise<Answer> {
    const res = await fetch(whoamiPath(), { headers: token !== undefined ? { authorization: `Bearer ${token}` } : {} });
    return { status: res.status, headers: res.headers, text: await res.text() };
  }
  async function me(token: string): Promise<MeView> {
    const a = await ask(token);
    expect(a.status, a.text).to.equal(200);
    return JSON.parse(a.text) as MeView;
  }
  async function ledger(query: string): Promise<BudgetView> {
    const base = (e2e.stack.ready.metrics ?? '').replace(/\/metrics$/, '');
    const body = (await (await fetch(`${base}/budget?${query}`)).json()) as { budgets: BudgetView[] };
    const view = body.budgets[0];
    if (view === undefined) throw new Error(`no budget for ${query}`);
    return view;
  }
  const whoamiAtUpstream = () => e2e.upstream.received.filter((r) => r.path.includes('tollgate')).length;

  before(async () => {
    alice = await e2e.issuer.mint(ALICE);
    bob = await e2e.issuer.mint(BOB);
    // Alice's SDK calls: each counts in per-user and team-chat and is charged to both budgets.
    const sdk = new OpenAI({ baseURL: `${e2e.stack.ready.envoy}/v1`, apiKey: alice, maxRetries: 0 });
    for (let i = 0; i < 3; i++) {
      await sdk.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `hi ${i}` }] });
    }
    // Settlement ends after the SDK got its answer: wait until nothing is reserved.
    const deadline = Date.now() + 15_000;
    for (;;) {
      const b = await ledger('tenant=acme');
      if (b.reserved === 0 && (b.used ?? 0) > 0) break;
      if (Date.now() > deadline) throw new Error('the three calls did not settle');
      await new Promise((r) => setTimeout(r, 25));
    }
    home = await mkdtemp(join(tmpdir(), 'tollgate-whoami-'));
  });

  after(async () => {
    if (home !== '') await rm(home, { recursive: true, force: true });
  });

  it('answers 200 JSON itself: the identity, the claims the rules read, the models, the rules that apply', async () => {
    const a = await ask(alice);
    expect(a.status, a.text).to.equal(200);
    expect(a.headers.get('content-type')).to.equal('application/json');
    expect(a.headers.get('x-tollgate-reason')).to.equal('whoami');
    expect(a.headers.get('cache-control')).to.equal('no-store');
    expect(a.headers.get('x-request-id')).to.be.a('string');
    expect(a.text).to.not.include(alice); // never the token
    expect(a.text).to.not.include('sk-test'); // never the upstream key
    const view = JSON.parse(a.text) as MeView;
    expect(view.identity).to.include({ provider: 'main-idp', issuer: e2e.issuer.url, user: 'alice@myorg.com', tenant: 'acme' });
    expect(view.identity.groups).to.deep.equal(['team-a']);
    expect(view.claims['email']).to.equal('alice@myorg.com');
    expect(view.models).to.include.members(['gpt-4o-mini', 'gpt-4o']);
    expect(view.models).to.not.include('gpt-4.1');
    expect(view.authorization).to.deep.equal({ default: 'deny', mode: 'enforce' });
    expect(view.rules).to.deep.equal([
      { name: 'contractors-out', action: 'deny', mode: 'enforce', applies: false },
      {
        name: 'staff-models',
        action: 'allow',
        mode: 'enforce',
        applies: true,
        claimsUsed: { email: 'alice@myorg.com' },
        requests: { path: '/v1/chat/completions', models: ['gpt-4o-mini', 'gpt-4o'] },
      },
    ]);
  });

  it('shows exactly the rate-limit counts and the budgets the ledger holds, and a second ask changes none of them', async () => {
    const first = await me(alice);
    const perUser = first.rateLimits.find((l) => l.name === 'per-user');
    const team = first.rateLimits.find((l) => l.name === 'team-chat');
    expect(perUser?.buckets).to.have.length(1);
    expect(perUser?.buckets[0]).to.include({ key: 'rl:per-user:alice%40myorg.com', count: 3, remaining: 47 });
    expect(Date.parse(perUser?.buckets[0]?.resetsAt ?? '')).to.be.greaterThan(Date.now());
    expect(team?.buckets.map((b) => [b.key, b.count, b.remaining])).to.deep.equal([['rl:team-chat:team-a', 3, 7]]);

    const tenant = await ledger('tenant=acme');
    const user = await ledger('user=alice@myorg.com');
    expect(first.budgets.map((b) => b.name)).to.deep.equal(['tenant:acme', 'user:alice@myorg.com']);
    const [mine, own] = first.budgets;
    expect(mine).to.include({ used: tenant.used, reserved: 0, remaining: tenant.remaining, limit: 100000, periodId: tenant.periodId, resetsAt: tenant.resetsAt });
    expect(own).to.include({ used: user.used, reserved: 0, remaining: user.remaining, limit: 50000, period: 'day' });
    // What the upstream reported for the three calls is what both budgets were charged.
    const reported = e2e.upstream.reported.reduce((n, u) => n + u.totalTokens, 0);
    expect(mine?.used).to.equal(reported);

    const second = await me(alice);
    expect(second.rateLimits).to.deep.equal(first.rateLimits);
    expect(second.budgets).to.deep.equal(first.budgets);
    expect((await ledger('tenant=acme')).used).to.equal(tenant.used);
    expect(whoamiAtUpstream()).to.equal(0);
  });

  it("shows another user only their own data", async () => {
    const a = await ask(bob);
    expect(a.status, a.text).to.equal(200);
    expect(a.text).to.not.include('alice');
    expect(a.text).to.not.include('acme');
    const view = JSON.parse(a.text) as MeView;
    expect(view.identity).to.include({ user: 'bob@other.example', tenant: 'globex' });
    expect(view.models).to.deep.equal([]);
    expect(view.rules.map((r) => [r.name, r.applies])).to.deep.equal([['contractors-out', true], ['staff-models', false]]);
    expect(view.rateLimits.map((l) => l.name)).to.deep.equal(['per-user']);
    expect(view.rateLimits[0]?.buckets).to.deep.equal([{ key: 'rl:per-user:bob%40other.example', count: 0, remaining: 50 }]);
    expect(view.budgets.map((b) => [b.name, b.used, b.reserved, b.remaining])).to.deep.equal([['tenant:globex', 0, 0, 7000]]);
  });

  it('answers a bad or missing token with the usual 401 envelope, and sends nothing upstream', async () => {
    const received = e2e.upstream.received.length;
    const bad = await ask('not-a-jwt');
    expect(bad.status).to.equal(401);
    expect(bad.headers.get('x-tollgate-reason')).to.equal('malformed_token');
    expect(bad.headers.get('www-authenticate')).to.match(/^Bearer realm="tollgate"/);
    expect((JSON.parse(bad.text) as { error: { code: string } }).error.code).to.equal('invalid_api_key');
    const expired = await ask(await e2e.issuer.mint(ALICE, { expiresIn: -120 }));
    expect(expired.status).to.equal(401);
    expect(expired.headers.get('x-tollgate-reason')).to.equal('token_expired');
    const none = await ask(undefined);
    expect(none.status).to.equal(401);
    expect(none.headers.get('x-tollgate-reason')).to.equal('missing_token');
    expect(e2e.upstream.received.length).to.equal(received);
    expect(whoamiAtUpstream()).to.equal(0);
  });

  it('writes an audit line per ask with decision `answer` and reason `whoami`', async () => {
    await me(alice);
    const lines = e2e.stack.logLines().filter((l) => l['audit'] === 'decision' && l['path'] === '/v1/tollgate/whoami');
    const answered = lines.filter((l) => l['reason'] === 'whoami');
    expect(answered.length).to.be.greaterThan(0);
    expect(answered.at(-1)).to.include({ decision: 'answer', status: 200, user: 'alice@myorg.com', method: 'GET' });
    expect(lines.some((l) => l['reason'] === 'malformed_token' && l['decision'] === 'deny')).to.equal(true);
  });

  describe('tollgate whoami (the CLI, with the token from the login cache)', () => {
    async function cli(args: string[], env: Record<string, string> = {}) {
      try {
        const { stdout, stderr } = await exec(process.execPath, [...SOURCE_CLI, 'whoami', ...args], {
          cwd: ROOT,
          env: { ...process.env, TOLLGATE_HOME: home, TOLLGATE_CONFIG: join(home, 'none.yaml'), TOLLGATE_URL: '', TOLLGATE_PROFILE: '', ...env },
        });
        return { code: 0, stdout, stderr };
      } catch (e) {
        const err = e as { code: number; stdout: string; stderr: string };
        return { code: err.code, stdout: err.stdout, stderr: err.stderr };
      }
    }

    before(async () => {
      // What `tollgate login` leaves behind (src/cli/login/cache.ts), for Alice; fresh for an hour.
      await mkdir(join(home, 'credentials'), { recursive: true, mode: 0o700 });
      const now = Math.floor(Date.now() / 1000);
      const login = { version: 1, issuer: e2e.issuer.url, clientId: 'tollgate-cli', scope: 'openid', token: 'access', accessToken: alice, expiresAt: now + 3600, obtainedAt: now };
      await writeFile(join(home, 'credentials', 'default.json'), JSON.stringify(login), { mode: 0o600 });
    });

    it('prints the summary: who, models, rules, limits with what is left, budgets', async () => {
      const r = await cli(['--url', `${e2e.stack.ready.envoy}/v1`]);
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout).to.include('alice@myorg.com (user alice@myorg.com) via main-idp');
      expect(r.stdout).to.match(/tenant +acme/);
      expect(r.stdout).to.include('staff-models: applies (email=alice@myorg.com)');
      expect(r.stdout).to.include('contractors-out: does not apply to you');
      expect(r.stdout).to.match(/rl:per-user:alice%40myorg\.com {2}3 of 50 used, 47 left, resets in/);
      expect(r.stdout).to.match(/tenant:acme +month/);
      expect(r.stdout).to.not.include(alice);
    });

    it('prints the JSON with --json, the base URL from TOLLGATE_URL (without /v1)', async () => {
      const r = await cli(['--json'], { TOLLGATE_URL: e2e.stack.ready.envoy });
      expect(r.code, r.stderr).to.equal(0);
      const view = JSON.parse(r.stdout) as MeView;
      expect(view.identity.user).to.equal('alice@myorg.com');
      expect(view.rateLimits.find((l) => l.name === 'per-user')?.buckets[0]?.count).to.equal(3);
    });

    it('says what is wrong: no login, no URL, nothing listening, a refused token', async () => {
      const noLogin = await cli(['--url', e2e.stack.ready.envoy, '--profile', 'work']);
      expect(noLogin.code).to.equal(1);
      expect(noLogin.stderr).to.include('profile work is not logged in: run `tollgate login --profile work`');
      const noUrl = await cli([]);
      expect(noUrl.code).to.equal(2);
      expect(noUrl.stderr).to.include('which gateway?');
      const down = await cli(['--url', 'http://127.0.0.1:9']);
      expect(down.code).to.equal(1);
      expect(down.stderr).to.include('cannot reach the gateway at http://127.0.0.1:9');
      // A login whose token the gateway does not take (another audience).
      const now = Math.floor(Date.now() / 1000);
      const foreign = await e2e.issuer.mint(ALICE, { audience: 'someone-else' });
      const login = { version: 1, issuer: e2e.issuer.url, clientId: 'x', scope: 'openid', token: 'access', accessToken: foreign, expiresAt: now + 3600, obtainedAt: now };
      await writeFile(join(home, 'credentials', 'other.json'), JSON.stringify(login), { mode: 0o600 });
      const refused = await cli(['--url', e2e.stack.ready.envoy, '--profile', 'other']);
      expect(refused.code).to.equal(1);
      expect(refused.stderr).to.include('the gateway refused the token of profile other (bad_audience');
      expect(whoamiAtUpstream()).to.equal(0);
    });
  });
});

describe('e2e: whoami with two replicas on one Redis', function () {
  this.timeout(90_000);
  const devs = withDevs();
  const shared = withSharedRedis(devs, (redis) =>
    baseConfig({
      issuer: devs.issuer,
      extra: `${EXTRA.replace(/authorization:[\s\S]*?rateLimits:/, 'rateLimits:')}store:\n  redis: { url: ${redis.url()}, timeoutMs: 2000, onUnavailable: closed, keyPrefix: "who:" }\n`,
    }),
  );

  it('shows on one replica what was counted on the other, and reading moves nothing in Redis', async () => {
    const [a, b] = shared.stacks;
    const alice = await devs.issuer.mint(ALICE);
    const sdk = new OpenAI({ baseURL: `${a?.ready.envoy}/v1`, apiKey: alice, maxRetries: 0 });
    for (let i = 0; i < 2; i++) await sdk.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
    const ask = async () => {
      const res = await fetch(`${b?.ready.envoy}/v1/tollgate/whoami`, { headers: { authorization: `Bearer ${alice}` } });
      expect(res.status).to.equal(200);
      return (await res.json()) as MeView;
    };
    let view = await ask();
    const deadline = Date.now() + 15_000;
    while ((view.budgets[0]?.reserved ?? 1) !== 0 || (view.budgets[0]?.used ?? 0) === 0) {
      if (Date.now() > deadline) throw new Error('the two calls did not settle');
      await new Promise((r) => setTimeout(r, 50));
      view = await ask();
    }
    expect(view.rateLimits.find((l) => l.name === 'per-user')?.buckets[0]).to.include({ key: 'rl:per-user:alice%40myorg.com', count: 2, remaining: 48 });
    const used = await shared.inspect.get('who:rl:per-user:alice%40myorg.com');
    const ttl = await shared.inspect.pttl('who:rl:per-user:alice%40myorg.com');
    const budgetUsed = view.budgets[0]?.used;
    expect(budgetUsed).to.equal(devs.upstream.reported.reduce((n, u) => n + u.totalTokens, 0));
    const again = await ask();
    // With Redis a window's end is read as now + PTTL: the same instant, give or take the clock.
    const buckets = (v: MeView) => v.rateLimits.flatMap((l) => l.buckets.map((k) => ({ ...k, resetsAt: Math.round(Date.parse(k.resetsAt ?? '') / 1000) })));
    const b1 = buckets(view);
    const b2 = buckets(again);
    expect(b2.map((k) => [k.key, k.count, k.remaining])).to.deep.equal(b1.map((k) => [k.key, k.count, k.remaining]));
    b2.forEach((k, i) => expect(Math.abs(k.resetsAt - (b1[i]?.resetsAt ?? 0))).to.be.at.most(1));
    expect(again.budgets).to.deep.equal(view.budgets);
    expect(await shared.inspect.get('who:rl:per-user:alice%40myorg.com')).to.equal(used).and.equal('2');
    expect(await shared.inspect.pttl('who:rl:per-user:alice%40myorg.com')).to.be.at.most(ttl);
  });
});

describe('e2e: tollgate whoami after `tollgate demo`, with no login configured', function () {
  this.timeout(60_000);
  const devs = withDevs();
  let home = '';
  let demoIssuer: DevIssuer | undefined;
  let stack: StackProcess | undefined;

  before(async () => {
    home = await mkdtemp(join(tmpdir(), 'tollgate-whoami-demo-'));
    // The demo issuer keeps its keys in TOLLGATE_HOME, as `tollgate demo` does.
    demoIssuer = await DevIssuer.start({ statePath: join(home, 'dev-issuer.json'), audience: DEMO_AUDIENCE });
    stack = await startStack({ config: baseConfig({ issuer: demoIssuer, provider: `audiences: [${DEMO_AUDIENCE}]` }), upstream: devs.upstream.url, env: UPSTREAM_ENV });
  });
  after(async () => {
    await stack?.stop();
    await demoIssuer?.close();
    await rm(home, { recursive: true, force: true });
  });

  it('asks with the demo token, as `tollgate token` would print it, and says so', async () => {
    const env = { ...process.env, TOLLGATE_HOME: home, TOLLGATE_CONFIG: join(home, 'none.yaml'), TOLLGATE_ISSUER: '', TOLLGATE_CLIENT_ID: '', TOLLGATE_PROFILE: '', TOLLGATE_URL: stack?.ready.envoy ?? '' };
    const { stdout, stderr } = await exec(process.execPath, [...SOURCE_CLI, 'whoami', '--json'], { cwd: ROOT, env });
    expect(stderr).to.include('no login configured: asking with a demo token');
    const view = JSON.parse(stdout) as MeView;
    expect(view.identity).to.include({ user: 'dev@example.com', tenant: 'demo' });
    expect(view.identity.groups).to.deep.equal(['ml-team']);
  });
});
