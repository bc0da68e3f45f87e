/**
 * Budgets in money end to end: two `tollgate stack` replicas (real Envoy each) on one real
 * redis-server, the dev issuer and upstream, the official openai SDK. A tenant with `maxCost`
 * is refused at the call its upstream usage (priced with cached and reasoning details) says,
 * the shared ledger equals Σ usage × prices exactly, an aborted stream is charged in cost, and
 * a model without a price is refused before anything is counted. And a token rate limit
 * (`period: minute`) refuses within its minute and admits again in the next.
 */
import { expect } from 'chai';
import OpenAI from 'openai';
import { periodWindow } from '../../src/budgets/period.js';
import { budgetKey } from '../../src/budgets/planner.js';
import type { BudgetView } from '../../src/budgets/view.js';
import { costOfUsage, formatMicros, type ModelPrice } from '../../src/metering/pricing.js';
import { baseConfig, withDevs, withSharedRedis } from '../helpers/e2e.js';
import { eventually } from '../helpers/serve.js';
import type { StackProcess } from '../helpers/stack.js';

const MODEL = 'gpt-4o-mini';
const MESSAGES = [{ role: 'user' as const, content: 'hi' }];
const PREFIX = 'tollgate-cost:';
/** The file's prices (USD per million tokens) as pico-dollars per token. */
const PRICE: ModelPrice = { input: 150_000, cachedInput: 75_000, output: 600_000, reasoning: 1_200_000 };

async function readBudget(stack: StackProcess, query: string): Promise<BudgetView> {
  const base = (stack.ready.metrics ?? '').replace(/\/metrics$/, '');
  const res = await fetch(`${base}/budget?${query}`);
  expect(res.status, `GET /budget?${query}`).to.equal(200);
  const view = ((await res.json()) as { budgets: BudgetView[] }).budgets[0];
  if (view === undefined) throw new Error('no budget in the answer');
  return view;
}

/** Waits until `check` holds (a settlement ends just after the client got its response). */
const settled = (what: string, check: () => boolean) => eventually(() => (check() ? true : undefined), what);

function usageLines(stacks: readonly StackProcess[], tenant: string): Record<string, unknown>[] {
  return stacks.flatMap((s) => s.logLines().filter((l) => l['audit'] === 'usage' && l['tenant'] === tenant));
}

const key = (tenant: string, unit: 'tokens' | 'usd') =>
  PREFIX + budgetKey({ tenant, period: 'month', timeZone: 'UTC' }, periodWindow('month', 'UTC', Date.now()), unit);

describe('e2e: budgets in money through real Envoy, two replicas on Redis', function () {
  this.timeout(120000);
  const devs = withDevs();
  const shared = withSharedRedis(devs, (redis) =>
    baseConfig({
      issuer: devs.issuer,
      extra: `pricing:
  builtin: false
  models:
    "gpt-4o-mini*": { input: 0.15, cachedInput: 0.075, output: 0.60, reasoning: 1.20 }
tokenBudgets:
  - { tenant: acme, maxCost: 0.001, period: month }
  - { tenant: beta, maxCost: 1, maxTokens: 1000000, period: month }
  - { user: ann@tpm.test, maxTokens: 1000, period: minute }
store:
  redis: { url: ${redis.url()}, timeoutMs: 2000, onUnavailable: closed, keyPrefix: "${PREFIX}" }
`,
    }),
  );
  const { stacks } = shared;

  async function client(i: number, tenant: string): Promise<OpenAI> {
    const apiKey = await devs.issuer.mint({ sub: `${tenant}-${i}`, email: `u${i}@${tenant}.test`, tenant_id: tenant });
    return new OpenAI({ baseURL: `${stacks[i % 2]!.ready.envoy}/v1`, apiKey, maxRetries: 0, timeout: 20000 });
  }

  it('refuses the tenant at the call its priced usage says, and the ledger is Σ usage × prices exactly', async () => {
    // Each call reports 1000 prompt tokens (400 cached) and 200 output tokens (50 reasoning):
    // 600 × 0.15 + 400 × 0.075 + 150 × 0.60 + 50 × 1.20 = 270 micro-dollars. It reserves far less
    // (its prompt is estimated at a few tokens): prompt + 200 × 1.20 ≈ 241. With $0.001, the
    // calls see 1000, 730, 460 and then 190 micro-dollars of room: the fourth is refused.
    const usage = { 'x-dev-prompt-tokens': '1000', 'x-dev-cached-tokens': '400', 'x-dev-completion-tokens': '200', 'x-dev-reasoning-tokens': '50' };
    const reportedBefore = devs.upstream.reported.length;
    for (let i = 0; i < 3; i++) {
      const sdk = await client(i, 'acme');
      if (i === 1) {
        const stream = await sdk.chat.completions.create({ model: MODEL, messages: MESSAGES, max_tokens: 200, stream: true }, { headers: usage });
        for await (const chunk of stream) void chunk;
      } else {
        const res = await sdk.chat.completions.create({ model: MODEL, messages: MESSAGES, max_tokens: 200 }, { headers: usage });
        expect(res.usage).to.deep.include({ prompt_tokens: 1000, completion_tokens: 200 });
      }
      await settled(`settlement ${i + 1}`, () => usageLines(stacks, 'acme').length === i + 1);
    }
    const refused = await (await client(3, 'acme')).chat.completions
      .create({ model: MODEL, messages: MESSAGES, max_tokens: 200 }, { headers: usage })
      .catch((e: unknown) => e);
    expect(refused).to.be.instanceOf(OpenAI.RateLimitError);
    const e = refused as InstanceType<typeof OpenAI.RateLimitError>;
    expect([e.status, e.code, e.headers?.get('x-tollgate-reason')]).to.deep.equal([429, 'insufficient_quota', 'budget_exhausted']);
    expect(e.message).to.match(/worst case of \$0\.000\d+ does not fit the \$0\.00019 left in your cost budget tenant:acme for this month \(\$0\.001\)/);
    expect(e.headers?.get('x-should-retry')).to.equal('false');

    const reported = devs.upstream.reported.slice(reportedBefore);
    expect(reported).to.have.length(3);
    const expected = reported.reduce(
      (sum, r) =>
        sum +
        costOfUsage(PRICE, { inputTokens: r.promptTokens, outputTokens: r.completionTokens, cachedInputTokens: r.cachedTokens, reasoningTokens: r.reasoningTokens }),
      0,
    );
    expect(expected).to.equal(3 * 270);
    expect(await shared.inspect.hget(key('acme', 'usd'), 'used')).to.equal(String(expected));
    expect(Number(await shared.inspect.hget(key('acme', 'usd'), 'reserved'))).to.equal(0);
    expect(await shared.inspect.exists(key('acme', 'tokens')), 'a cost-only budget keeps no token counter').to.equal(0);
    for (const line of usageLines(stacks, 'acme')) {
      expect(line).to.include({ cost: '0.000270', chargedCost: '0.000270', charged: 0, source: 'provider', settled: true });
    }
    for (const stack of stacks) {
      expect((await readBudget(stack, 'tenant=acme')).cost).to.deep.equal({
        currency: 'USD', limit: '0.001000', used: '0.000810', reserved: '0.000000', remaining: '0.000190',
      });
    }
  });

  it('charges an aborted stream its estimate, priced, in both the token and the cost counter', async () => {
    const sdk = await client(0, 'beta');
    const stream = await sdk.chat.completions.create(
      { model: MODEL, messages: MESSAGES, stream: true, max_tokens: 100 },
      { headers: { 'x-dev-chunks': '10', 'x-dev-chunk-delay-ms': '50', 'x-dev-reset-after-chunks': '3' } },
    );
    const err = await (async () => {
      for await (const chunk of stream) void chunk;
    })().then(() => undefined, (x: unknown) => x);
    expect(err, 'the client sees the stream break').to.be.instanceOf(Error);
    await settled('the estimated settlement', () => usageLines(stacks, 'beta').length === 1);
    const line = usageLines(stacks, 'beta')[0] ?? {};
    expect(line).to.include({ source: 'estimated', aborted: true, settled: true });
    const cost = costOfUsage(PRICE, { inputTokens: Number(line['inputTokens']), outputTokens: Number(line['outputTokens']) });
    expect(cost).to.be.greaterThan(0);
    expect(line).to.include({ cost: formatMicros(cost), chargedCost: formatMicros(cost), charged: line['totalTokens'] });
    expect(await shared.inspect.hget(key('beta', 'usd'), 'used')).to.equal(String(cost));
    expect(await shared.inspect.hget(key('beta', 'tokens'), 'used')).to.equal(String(line['totalTokens']));
  });

  it('refuses a model the price table does not know, before anything is counted (403 model_not_priced)', async () => {
    const sdk = await client(1, 'beta');
    const before = devs.upstream.received.length;
    const usedBefore = await shared.inspect.hget(key('beta', 'usd'), 'used');
    const refused = await sdk.chat.completions.create({ model: 'gpt-4o', messages: MESSAGES }).catch((e: unknown) => e);
    expect(refused).to.be.instanceOf(OpenAI.PermissionDeniedError);
    const e = refused as InstanceType<typeof OpenAI.PermissionDeniedError>;
    expect([e.status, e.code, e.type, e.headers?.get('x-tollgate-reason')]).to.deep.equal([403, 'model_not_priced', 'permission_denied', 'model_not_priced']);
    expect(e.message).to.include('"gpt-4o" has no price').and.include('cost budget tenant:beta');
    expect(devs.upstream.received.length).to.equal(before);
    expect(await shared.inspect.hget(key('beta', 'usd'), 'used')).to.equal(usedBefore);
  });

  it('a tokens-per-minute limit refuses within the minute (429 rate_limit_exceeded, type tokens) and admits again after', async () => {
    const apiKey = await devs.issuer.mint({ sub: 'ann', email: 'ann@tpm.test', tenant_id: 'tpm' });
    const sdks = stacks.map((s) => new OpenAI({ baseURL: `${s.ready.envoy}/v1`, apiKey, maxRetries: 0, timeout: 20000 }));
    // 400 tokens a call (300 prompt + 100 output): with 1000 a minute the third still fits its
    // reservation, and overshoots by what it used beyond it; the fourth is refused.
    const usage = { 'x-dev-prompt-tokens': '300', 'x-dev-completion-tokens': '100' };
    const call = (i: number) => sdks[i % 2]!.chat.completions.create({ model: MODEL, messages: MESSAGES, max_tokens: 100 }, { headers: usage });
    // Four calls must fall in one minute: start with at least 20 s of it left.
    const left = () => 60_000 - (Date.now() % 60_000);
    if (left() < 20_000) await new Promise((r) => setTimeout(r, left() + 200));
    const minuteEnd = Date.now() + left();
    for (let i = 0; i < 3; i++) {
      await call(i);
      await settled(`settlement ${i + 1}`, () => usageLines(stacks, 'tpm').length === i + 1);
    }
    const refused = await call(3).catch((e: unknown) => e);
    expect(refused).to.be.instanceOf(OpenAI.RateLimitError);
    const e = refused as InstanceType<typeof OpenAI.RateLimitError>;
    expect([e.status, e.code, e.type, e.headers?.get('x-tollgate-reason')]).to.deep.equal([429, 'rate_limit_exceeded', 'tokens', 'token_rate_limited']);
    expect(e.headers?.get('x-should-retry')).to.equal(null);
    const retryAfter = Number(e.headers?.get('retry-after'));
    expect(retryAfter).to.be.within(Math.floor((minuteEnd - Date.now()) / 1000), Math.ceil((minuteEnd - Date.now()) / 1000) + 1);
    expect(e.headers?.get('x-ratelimit-remaining-tokens')).to.equal('0');
    const minuteKey = PREFIX + budgetKey({ user: 'ann@tpm.test', period: 'minute', timeZone: 'UTC' }, periodWindow('minute', 'UTC', minuteEnd - 1));
    expect(await shared.inspect.hget(minuteKey, 'used')).to.equal('1200');
    const keyLeft = minuteEnd + 60_000 - Date.now();
    expect(await shared.inspect.pttl(minuteKey), 'a minute key lives a minute past its minute').to.be.within(keyLeft - 2000, keyLeft + 1000);

    await new Promise((r) => setTimeout(r, Math.max(0, minuteEnd - Date.now()) + 300));
    const { response } = await call(4).withResponse();
    expect(response.headers.get('x-ratelimit-limit-tokens')).to.equal('1000');
  });
});
