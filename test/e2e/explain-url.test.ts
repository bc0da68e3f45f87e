/**
 * `tollgate explain --url` end to end: real Envoy + `tollgate stack` (memory store) + the openai
 * SDK fill part of a rate limit and a budget; the real CLI (a child process) then reads the
 * sidecar's counters from `GET /counters` and shows exactly them, and the decision it gives is
 * the one the next live request gets: allowed while there is room, then refused by the full
 * rate limit and by the budget with the same status, reason and OpenAI envelope. The sidecar
 * has a `server.metricsToken`, which the CLI sends from TOLLGATE_METRICS_TOKEN.
 */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import OpenAI from 'openai';
import { budgetKey } from '../../src/budgets/planner.js';
import { periodWindow } from '../../src/budgets/period.js';
import type { Explanation, LimitLine } from '../../src/cli/explain.js';
import { bucketKey } from '../../src/limits/rate-limit.js';
import type { RunningEnvoy } from '../../src/stack/envoy.js';
import { baseConfig, withDevs, withStack } from '../helpers/e2e.js';
import { RedisServer } from '../helpers/redis-server.js';
import { eventually, startEnvoyFor, startServe, type ServeProcess } from '../helpers/serve.js';
import { ROOT, SOURCE_CLI } from '../helpers/stack.js';

const run = promisify(execFile);
const TOKEN = 'e2e-metrics-token-0123456789';
/** The CLI's environment: the sidecar's server.metricsToken in TOLLGATE_METRICS_TOKEN. */
const withToken = { ...process.env, TOLLGATE_METRICS_TOKEN: TOKEN };

const LIMITS = `
identityHeaders: { x-tenant-id: tenant }
rateLimits:
  - name: three-a-day
    match: { path: /v1/chat/completions }
    requestsPerUnit: 3
    unit: day
tokenBudgets:
  - { tenant: acme, maxTokens: 1000, period: month }
`;
/** What the upstream reports for each request (the SDK's per-request headers fix it). */
const USAGE = { 'x-dev-prompt-tokens': '100', 'x-dev-completion-tokens': '50' };

/** "try again in 23h59m59.949s" made time-free: the CLI and the live request run ms apart. */
function untimed(body: unknown): unknown {
  return JSON.parse(JSON.stringify(body).replace(/in (\d+h)?(\d+m)?[\d.]+s\b/g, 'in <time>')) as unknown;
}

describe('e2e: tollgate explain --url reads a running sidecar’s counters', function () {
  this.timeout(90_000);
  const e2e = withStack((issuer) => baseConfig({ issuer, extra: LIMITS, server: 'metricsToken: { env: TEST_METRICS_TOKEN }' }), {
    env: { TEST_METRICS_TOKEN: TOKEN },
  });

  const claims = (email: string) => ({ sub: email, email, tenant_id: 'acme' });
  const client = async (email: string) =>
    new OpenAI({ baseURL: `${e2e.stack.ready.envoy}/v1`, apiKey: await e2e.issuer.mint(claims(email)), maxRetries: 0, timeout: 20_000 });
  const body = (maxTokens: number) => ({ model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: 'hello' }], max_tokens: maxTokens });

  /** The real CLI: `tollgate explain --url <the ready line's metrics URL> --json`. */
  async function explain(email: string, maxTokens: number): Promise<Explanation> {
    const file = join(e2e.stack.dir, `body-${email}-${maxTokens}.json`);
    await writeFile(file, JSON.stringify(body(maxTokens)));
    const args = ['explain', '--config', e2e.stack.configPath, '--claims', JSON.stringify(claims(email)), '--body', file];
    const { stdout, stderr } = await run(process.execPath, [...SOURCE_CLI, ...args, '--url', e2e.stack.ready.metrics ?? '', '--json'], { cwd: ROOT, env: withToken });
    expect(stderr).to.equal('');
    return JSON.parse(stdout) as Explanation;
  }

  /** One live chat completion through Envoy with the SDK: 'allowed', or the refusal as Envoy sent it. */
  async function live(email: string, maxTokens: number): Promise<{ status: number; reason: string | null; error?: unknown }> {
    const sdk = await client(email);
    try {
      await sdk.chat.completions.create(body(maxTokens), { headers: USAGE });
      return { status: 200, reason: null };
    } catch (err) {
      if (!(err instanceof OpenAI.APIError) || err.status === undefined) throw err;
      return { status: err.status, reason: err.headers?.get('x-tollgate-reason') ?? null, error: err.error };
    }
  }

  const settled = (n: number) =>
    eventually(() => (e2e.stack.logLines().filter((l) => l['audit'] === 'usage').length >= n ? true : undefined), `${n} settlements`);
  const line = (e: Explanation, kind: LimitLine['kind']): LimitLine | undefined => e.limits.find((l) => l.kind === kind);
  const budget = budgetKey({ tenant: 'acme', maxTokens: 1000, period: 'month', timeZone: 'UTC' }, periodWindow('month', 'UTC', Date.now()));

  it('shows the counters the traffic left, and the next live request gets the decision explained', async () => {
    // Two requests by ann: 2 of her 3 a day, and 2 × 150 tokens of the tenant's 1000.
    expect((await live('ann@acme.test', 50)).status).to.equal(200);
    expect((await live('ann@acme.test', 50)).status).to.equal(200);
    await settled(2);

    const third = await explain('ann@acme.test', 50);
    expect(third).to.include({ decision: 'allow', status: 200, reason: 'allowed' });
    expect(line(third, 'rate-limit')).to.include({ key: bucketKey('three-a-day', 'ann@acme.test'), limit: 3, current: 2, remaining: 0, refused: false });
    expect(line(third, 'budget')).to.include({ key: budget, limit: 1000, current: 300, reserved: 0, refused: false });
    // The same counters as the sidecar's own /budget.
    const budgetUrl = e2e.stack.ready.metrics?.replace(/\/metrics$/, '/budget?tenant=acme') ?? '';
    expect((await fetch(budgetUrl)).status, 'without the token').to.equal(401);
    const view = (await (await fetch(budgetUrl, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as { budgets: { used: number; reserved: number }[] };
    expect(view.budgets[0]).to.include({ used: 300, reserved: 0 });
    expect(await live('ann@acme.test', 50)).to.deep.equal({ status: 200, reason: null });
    await settled(3);

    // Her window is full now: explain says so, and Envoy refuses the fourth identically.
    const fourth = await explain('ann@acme.test', 50);
    expect(fourth).to.include({ decision: 'deny', status: 429, reason: 'rate_limited', rule: 'three-a-day' });
    expect(line(fourth, 'rate-limit')).to.include({ current: 3, refused: true });
    expect(line(fourth, 'budget')).to.include({ current: 450, reserved: 0 });
    const refused = await live('ann@acme.test', 50);
    expect([refused.status, refused.reason]).to.deep.equal([fourth.status, fourth.reason]);
    expect(untimed({ error: refused.error })).to.deep.equal(untimed(fourth.response?.body));
  });

  it('the budget the traffic filled refuses a request too large for the room left, live as explained', async () => {
    // 450 of 1000 used: bob (his own rate-limit bucket) asks for more output than the 550 left.
    const tooLarge = await explain('bob@acme.test', 600);
    expect(tooLarge).to.include({ decision: 'deny', status: 429, reason: 'budget_exhausted' });
    expect(line(tooLarge, 'rate-limit')).to.include({ current: 0, refused: false });
    expect(line(tooLarge, 'budget')).to.include({ current: 450, refused: true });
    const refused = await live('bob@acme.test', 600);
    expect([refused.status, refused.reason]).to.deep.equal([429, 'budget_exhausted']);
    expect(untimed({ error: refused.error })).to.deep.equal(untimed(tooLarge.response?.body));

    const fits = await explain('bob@acme.test', 100);
    expect(fits).to.include({ decision: 'allow' });
    expect(line(fits, 'budget')?.remaining).to.equal(550 - (line(fits, 'budget')?.wouldReserve ?? 0));
    expect((await live('bob@acme.test', 100)).status).to.equal(200);
  });

  it('a sidecar that is not there, or a missing token: one clear line, exit 1, no stack trace', async () => {
    const fails = async (url: string, env: NodeJS.ProcessEnv) => {
      const args = ['explain', '--config', e2e.stack.configPath, '--claims', JSON.stringify(claims('carl@acme.test')), '--model', 'gpt-4o-mini', '--url', url];
      const failed = await run(process.execPath, [...SOURCE_CLI, ...args], { cwd: ROOT, env }).then(
        () => undefined,
        (err: { code?: number; stdout?: string; stderr?: string }) => err,
      );
      expect(failed?.code).to.equal(1);
      expect(failed?.stdout).to.equal('');
      return failed?.stderr;
    };
    expect(await fails('http://127.0.0.1:1', withToken)).to.match(
      /^tollgate explain: cannot reach http:\/\/127\.0\.0\.1:1 \([^)]*\); is the sidecar running with server\.metrics set\?\n$/,
    );
    const origin = new URL(e2e.stack.ready.metrics ?? '').origin;
    const env = { ...process.env };
    delete env['TOLLGATE_METRICS_TOKEN'];
    expect(await fails(e2e.stack.ready.metrics ?? '', env)).to.equal(
      `tollgate explain: cannot read the counters: ${origin} wants its server.metricsToken: set TOLLGATE_METRICS_TOKEN to it (it is not set)\n`,
    );
  });
});

describe('e2e: tollgate explain --url with server.workers: 2 and Redis', function () {
  this.timeout(120_000);
  const devs = withDevs();
  let redis: RedisServer | undefined;
  let serve: ServeProcess | undefined;
  let envoy: { envoy: RunningEnvoy } | undefined;

  before(async () => {
    redis = await RedisServer.start();
    const config = baseConfig({
      issuer: devs.issuer,
      server: 'workers: 2, metricsToken: { env: TEST_METRICS_TOKEN }',
      extra: `rateLimits:
  - { name: two-a-day, match: { path: /v1/chat/completions }, requestsPerUnit: 2, unit: day }
tokenBudgets:
  - { tenant: acme, maxTokens: 100000, period: day }
store:
  redis: { url: ${redis.url()}, timeoutMs: 2000, onUnavailable: closed, keyPrefix: "explain-workers:" }
`,
    });
    serve = await startServe({ config, env: { TEST_UPSTREAM_KEY: 'sk-test', TEST_METRICS_TOKEN: TOKEN }, timeoutMs: 60_000 });
    envoy = await startEnvoyFor(config, Number(serve.grpc.split(':').pop()), devs.upstream.url, { concurrency: 2 });
  });

  after(async () => {
    await envoy?.envoy.stop();
    await serve?.stop('SIGKILL');
    await redis?.stop();
  });

  it('the primary has a worker read the shared counters; explain and the next live request agree', async () => {
    const sidecar = serve as ServeProcess;
    const claims = { sub: 'dan', email: 'dan@acme.test', tenant_id: 'acme' };
    const sdk = new OpenAI({ baseURL: `${envoy?.envoy.url}/v1`, apiKey: await devs.issuer.mint(claims), maxRetries: 0, timeout: 20_000 });
    const chat = { model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: 'hello' }], max_tokens: 50 };
    for (let i = 0; i < 2; i++) await sdk.chat.completions.create(chat, { headers: USAGE });
    await eventually(() => (sidecar.logLines().filter((l) => l['audit'] === 'usage').length >= 2 ? true : undefined), 'two settlements');

    // Asked several times, so both workers answer: always the shared value.
    const window = bucketKey('two-a-day', 'dan@acme.test');
    const tb = budgetKey({ tenant: 'acme', maxTokens: 1, period: 'day', timeZone: 'UTC' }, periodWindow('day', 'UTC', Date.now()));
    const url = `${sidecar.metricsUrl?.replace(/\/metrics$/, '') ?? ''}/counters?window=${encodeURIComponent(window)}&budget=${tb}`;
    for (let i = 0; i < 4; i++) {
      const res = await fetch(url, { headers: { authorization: `Bearer ${TOKEN}` } });
      expect(res.status).to.equal(200);
      const body = (await res.json()) as { windows: { count: number }[]; budgets: { used: number; reserved: number }[] };
      expect([body.windows[0]?.count, body.budgets[0]?.used, body.budgets[0]?.reserved]).to.deep.equal([2, 300, 0]);
    }
    expect((await fetch(url)).status, 'the primary wants the token too').to.equal(401);

    const file = join(sidecar.dir, 'body.json');
    await writeFile(file, JSON.stringify(chat));
    const args = ['explain', '--config', join(sidecar.dir, 'tollgate.yaml'), '--claims', JSON.stringify(claims), '--body', file, '--url', sidecar.metricsUrl ?? '', '--json'];
    const { stdout } = await run(process.execPath, [...SOURCE_CLI, ...args], { cwd: ROOT, env: withToken });
    const explained = JSON.parse(stdout) as Explanation;
    expect(explained).to.include({ decision: 'deny', status: 429, reason: 'rate_limited', rule: 'two-a-day' });
    expect(explained.limits.find((l) => l.kind === 'budget')).to.include({ key: tb, current: 300, reserved: 0 });
    let refused: unknown;
    await sdk.chat.completions.create(chat, { headers: USAGE }).catch((err: unknown) => (refused = err));
    if (!(refused instanceof OpenAI.APIError)) throw new Error(`the third request was not refused: ${String(refused)}`);
    expect([refused.status, refused.headers?.get('x-tollgate-reason')]).to.deep.equal([429, 'rate_limited']);
    expect(untimed({ error: refused.error })).to.deep.equal(untimed(explained.response?.body));
  });
});
