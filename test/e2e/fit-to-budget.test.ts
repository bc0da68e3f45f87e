/**
 * No single request overshoots a budget (DESIGN 1.8), end to end: two `tollgate stack`
 * replicas (two Envoys, two sidecars) share one real redis-server, the official openai SDK is
 * the client and the dev upstream reports usage that honours the limits it receives.
 *
 * - `fitToBudget: refuse` (the default): a request whose worst case (prompt estimate + n × its
 *   output limit, or the default) does not fit is refused whole; one that fits gets the
 *   default written into it when it named no limit.
 * - `fitToBudget: cap`: the upstream receives `max_completion_tokens` / `max_tokens` /
 *   `max_output_tokens` lowered so that n × cap fits the room, streaming or not.
 * - Many concurrent requests over both replicas never push Redis's `used` above `maxTokens`,
 *   and it equals the usage the upstream reported.
 */
import { expect } from 'chai';
import OpenAI from 'openai';
import type { DevIssuer } from '../../src/dev/issuer.js';
import { estimateReservation } from '../../src/metering/estimate.js';
import { periodWindow } from '../../src/budgets/period.js';
import { budgetKey } from '../../src/budgets/planner.js';
import type { RedisServer } from '../helpers/redis-server.js';
import { baseConfig, withDevs, withSharedRedis, type Devs, type SharedRedis } from '../helpers/e2e.js';
import type { StackProcess } from '../helpers/stack.js';

const MODEL = 'gpt-4o-mini';
const CHAT = '/v1/chat/completions';
const HI = [{ role: 'user' as const, content: 'hi' }];
/** The dev upstream then produces as much output as each request allows. */
const ALL_OUTPUT = { 'x-dev-completion-tokens': '100000' };
type Body = Record<string, unknown>;

function config(
  issuer: DevIssuer,
  redis: RedisServer,
  prefix: string,
  budgets: Record<string, number>,
  metering: string,
): string {
  const lines = Object.entries(budgets).map(
    ([tenant, max]) => `  - { tenant: ${tenant}, maxTokens: ${max}, period: day }`,
  );
  return baseConfig({
    issuer,
    extra: `tokenBudgets:
${lines.join('\n')}
metering: { ${metering} }
store:
  redis: { url: ${redis.url()}, timeoutMs: 2000, onUnavailable: closed, keyPrefix: "${prefix}" }
`,
  });
}

/** The Redis hash of a tenant's daily budget. */
function ledgerKey(prefix: string, tenant: string): string {
  const window = periodWindow('day', 'UTC', Date.now());
  return prefix + budgetKey({ tenant, maxTokens: 1, period: 'day', timeZone: 'UTC' }, window);
}

async function ledger(shared: SharedRedis, prefix: string, tenant: string): Promise<{ used: number; reserved: number }> {
  const [used, reserved] = await shared.inspect.hmget(ledgerKey(prefix, tenant), 'used', 'reserved');
  return { used: Number(used ?? 0), reserved: Number(reserved ?? 0) };
}

function usageLines(stacks: readonly StackProcess[], tenant: string): Record<string, unknown>[] {
  return stacks.flatMap((s) => s.logLines().filter((l) => l['audit'] === 'usage' && l['tenant'] === tenant));
}

async function eventually(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function client(devs: Devs, stack: StackProcess, tenant: string, sub: string): Promise<OpenAI> {
  const apiKey = await devs.issuer.mint({ sub, email: `${sub}@myorg.com`, tenant_id: tenant });
  return new OpenAI({ baseURL: `${stack.ready.envoy}/v1`, apiKey, maxRetries: 0, timeout: 60000 });
}

/** The prompt tokens Tollgate estimates at admission for `body` (what it reserves for it). */
function promptOf(path: string, body: Body): number {
  return estimateReservation(path, body, MODEL, 1).prompt;
}

/** The parsed bodies the upstream received since `from`. */
function sentSince(devs: Devs, from: number): Body[] {
  return devs.upstream.received.slice(from).map((r) => JSON.parse(r.body) as Body);
}

/** `429 reason` for a Tollgate refusal, 'ok' otherwise; other errors fail the test. */
async function outcome(call: () => Promise<unknown>): Promise<string> {
  try {
    await call();
    return 'ok';
  } catch (err) {
    if (!(err instanceof OpenAI.APIError)) throw err;
    return `${err.status} ${err.headers?.get('x-tollgate-reason') ?? ''}`;
  }
}

/** One chat request, streamed or not, read to its end. */
async function chat(sdk: OpenAI, body: Body, stream: boolean, headers: Record<string, string>): Promise<void> {
  const params = { model: MODEL, messages: HI, ...body };
  if (!stream) {
    await sdk.chat.completions.create(params as OpenAI.ChatCompletionCreateParamsNonStreaming, { headers });
    return;
  }
  const s = await sdk.chat.completions.create({ ...params, stream: true } as OpenAI.ChatCompletionCreateParamsStreaming, { headers });
  for await (const chunk of s) void chunk;
}

/**
 * `count` concurrent chat requests of `bodies` over both replicas, each told to cost exactly
 * its admission estimate of prompt and all the output it is allowed; then waits until every
 * admitted one settled and checks Redis against the upstream's reported usage.
 */
async function crowd(
  devs: Devs,
  shared: SharedRedis,
  prefix: string,
  tenant: string,
  maxTokens: number,
  bodies: readonly Body[],
): Promise<{ outcomes: string[]; sent: Body[] }> {
  const { stacks } = shared;
  const clients = await Promise.all(bodies.map((_, i) => client(devs, stacks[i % 2]!, tenant, `${tenant}-${i}`)));
  const received = devs.upstream.received.length;
  const reported = devs.upstream.reported.length;
  const outcomes = await Promise.all(
    bodies.map((body, i) => {
      const params = { model: MODEL, messages: HI, ...body };
      const headers = { ...ALL_OUTPUT, 'x-dev-prompt-tokens': String(promptOf(CHAT, params)) };
      return outcome(() => chat(clients[i]!, body, i % 2 === 1, headers));
    }),
  );
  const admitted = outcomes.filter((o) => o === 'ok').length;
  expect(admitted, JSON.stringify(outcomes)).to.be.greaterThan(0);
  expect(outcomes.filter((o) => o !== 'ok' && o !== '429 budget_exhausted'), JSON.stringify(outcomes)).to.deep.equal([]);
  await eventually(`${admitted} settlements`, () => usageLines(stacks, tenant).length === admitted);
  const sent = sentSince(devs, received);
  expect(sent).to.have.length(admitted);
  const upstreamUsage = devs.upstream.reported.slice(reported).reduce((sum, r) => sum + r.totalTokens, 0);
  const state = await ledger(shared, prefix, tenant);
  expect(state.used, 'the ledger never exceeds the budget').to.be.at.most(maxTokens);
  expect(state.used, 'the ledger equals the upstream’s reported usage').to.equal(upstreamUsage);
  expect(state.reserved).to.equal(0);
  // Each admitted request was bounded: prompt + n × the limit it reached the upstream with.
  for (const b of sent) {
    const limit = Math.max(Number(b['max_completion_tokens'] ?? 0), Number(b['max_tokens'] ?? 0));
    expect(limit, JSON.stringify(b)).to.be.greaterThan(0);
    expect(promptOf(CHAT, b) + Number(b['n'] ?? 1) * limit).to.be.at.most(maxTokens);
  }
  return { outcomes, sent };
}

describe('e2e: no single request overshoots a budget (two replicas, one Redis)', function () {
  this.timeout(180000);
  const devs = withDevs();

  describe('fitToBudget: refuse (the default)', () => {
    const PREFIX = 'tollgate-fit-refuse:';
    const shared = withSharedRedis(
      devs,
      (redis) => config(devs.issuer, redis, PREFIX, { 'big-n': 3000, crowd: 2000 }, 'defaultMaxOutputTokens: 1000'),
      { timeoutMs: 60000 },
    );

    it('refuses n: 5 without max_tokens when its worst case does not fit, while a small request passes', async () => {
      const [a, b] = shared.stacks;
      const before = devs.upstream.received.length;
      const big = { model: MODEL, messages: HI, n: 5 };
      const worst = promptOf(CHAT, big) + 5 * 1000;
      const refused = await (await client(devs, a!, 'big-n', 'big-1')).chat.completions.create(big).catch((e: unknown) => e);
      expect(refused).to.be.instanceOf(OpenAI.RateLimitError);
      const e = refused as InstanceType<typeof OpenAI.RateLimitError>;
      expect(e.code).to.equal('insufficient_quota');
      expect(e.message).to.contain(`worst case of ${worst} tokens does not fit the 3000 left`);
      expect(e.headers?.get('x-tollgate-reason')).to.equal('budget_exhausted');
      expect(e.headers?.get('x-should-retry')).to.equal('false');
      expect(Number(e.headers?.get('retry-after'))).to.be.within(1, 86_400);
      expect(e.headers?.get('x-ratelimit-limit-tokens')).to.equal('3000');
      expect(e.headers?.get('x-ratelimit-remaining-tokens')).to.equal('3000');
      expect(devs.upstream.received.length, 'the refused request never reached the upstream').to.equal(before);
      expect(await ledger(shared, PREFIX, 'big-n')).to.deep.equal({ used: 0, reserved: 0 });

      // A small request with its own limit passes on the other replica, its body untouched.
      const sdk = await client(devs, b!, 'big-n', 'big-2');
      const small = { model: MODEL, messages: HI, max_tokens: 10 };
      const { response } = await sdk.chat.completions.create(small).withResponse();
      expect(response.headers.get('x-ratelimit-remaining-tokens')).to.equal(String(3000 - promptOf(CHAT, small) - 10));
      expect(sentSince(devs, before)).to.deep.equal([small]);

      // One without a limit that fits gets the default written: the reservation is a real bound.
      await sdk.chat.completions.create({ model: MODEL, messages: HI });
      expect(sentSince(devs, before + 1)).to.deep.equal([{ model: MODEL, messages: HI, max_completion_tokens: 1000 }]);
      await eventually('two settlements', () => usageLines(shared.stacks, 'big-n').length === 2);
      const reported = devs.upstream.reported.slice(-2).reduce((sum, r) => sum + r.totalTokens, 0);
      expect(await ledger(shared, PREFIX, 'big-n')).to.deep.equal({ used: reported, reserved: 0 });
    });

    it('many concurrent requests over both replicas never push the ledger above maxTokens', async () => {
      const limits = [undefined, 20, 50, 100];
      const bodies = Array.from({ length: 40 }, (_, i) => ({
        n: 1 + (i % 3),
        ...(limits[i % 4] !== undefined ? { max_tokens: limits[i % 4] } : {}),
      }));
      const { outcomes } = await crowd(devs, shared, PREFIX, 'crowd', 2000, bodies);
      // n > 1 without a limit (worst case 9 + n × 1000) never fits 2000: always refused whole.
      bodies.forEach((body, i) => {
        if (body.max_tokens === undefined && body.n > 1) expect(outcomes[i]).to.equal('429 budget_exhausted');
      });
    });
  });

  describe('fitToBudget: cap', () => {
    const PREFIX = 'tollgate-fit-cap:';
    const budgets = { 'cap-chat': 2000, 'cap-stream': 1500, 'cap-responses': 800, 'cap-crowd': 3000 };
    const shared = withSharedRedis(
      devs,
      (redis) => config(devs.issuer, redis, PREFIX, budgets, 'defaultMaxOutputTokens: 4096, fitToBudget: cap'),
      { timeoutMs: 60000 },
    );

    it('chat without max_tokens, n: 3: the upstream gets max_completion_tokens with 3 × cap within the room', async () => {
      const before = devs.upstream.received.length;
      const sdk = await client(devs, shared.stacks[0]!, 'cap-chat', 'cap-1');
      const body = { model: MODEL, messages: HI, n: 3 };
      const cap = Math.floor((2000 - promptOf(CHAT, body)) / 3);
      const { response } = await sdk.chat.completions.create(body, { headers: ALL_OUTPUT }).withResponse();
      expect(response.headers.get('x-ratelimit-remaining-tokens')).to.equal('0');
      expect(sentSince(devs, before)).to.deep.equal([{ ...body, max_completion_tokens: cap }]);
      await eventually('the settlement', () => usageLines(shared.stacks, 'cap-chat').length === 1);
      const used = devs.upstream.reported.at(-1)?.totalTokens;
      expect(used).to.equal(13 + 3 * cap); // the dev upstream's prompt, and all the output allowed
      expect(await ledger(shared, PREFIX, 'cap-chat')).to.deep.equal({ used, reserved: 0 });
    });

    it('a stream with max_tokens above the room: the upstream gets max_tokens lowered (and include_usage)', async () => {
      const before = devs.upstream.received.length;
      const sdk = await client(devs, shared.stacks[1]!, 'cap-stream', 'cap-2');
      const body = { model: MODEL, messages: HI, n: 2, max_tokens: 100_000, stream: true as const };
      const cap = Math.floor((1500 - promptOf(CHAT, body)) / 2);
      const { data, response } = await sdk.chat.completions.create(body).withResponse();
      let content = '';
      let usageChunks = 0;
      for await (const chunk of data) {
        content += chunk.choices[0]?.delta.content ?? '';
        if (chunk.usage) usageChunks += 1;
      }
      expect(content).not.to.equal('');
      expect(usageChunks, 'the injected usage chunk is removed again').to.equal(0);
      expect(response.headers.get('x-ratelimit-remaining-tokens')).to.equal('0');
      expect(sentSince(devs, before)).to.deep.equal([
        { ...body, max_tokens: cap, stream_options: { include_usage: true } },
      ]);
      await eventually('the settlement', () => usageLines(shared.stacks, 'cap-stream').length === 1);
      expect(await ledger(shared, PREFIX, 'cap-stream')).to.deep.equal({ used: 13 + 2 * 12, reserved: 0 });
    });

    it('the Responses API: the upstream gets max_output_tokens lowered to the room', async () => {
      const before = devs.upstream.received.length;
      const sdk = await client(devs, shared.stacks[0]!, 'cap-responses', 'cap-3');
      const body = { model: MODEL, input: 'hi', max_output_tokens: 50_000 };
      const cap = 800 - promptOf('/v1/responses', body);
      const { data, response } = await sdk.responses.create(body, { headers: ALL_OUTPUT }).withResponse();
      expect(data.usage?.output_tokens).to.equal(cap);
      expect(response.headers.get('x-ratelimit-remaining-tokens')).to.equal('0');
      expect(sentSince(devs, before)).to.deep.equal([{ ...body, max_output_tokens: cap }]);
      await eventually('the settlement', () => usageLines(shared.stacks, 'cap-responses').length === 1);
      expect(await ledger(shared, PREFIX, 'cap-responses')).to.deep.equal({ used: 13 + cap, reserved: 0 });
    });

    it('many concurrent capped requests over both replicas never push the ledger above maxTokens', async () => {
      const limits = [undefined, 100, 5000, 40];
      const bodies = Array.from({ length: 30 }, (_, i) => ({
        n: 1 + (i % 3),
        ...(limits[i % 4] !== undefined ? { max_tokens: limits[i % 4] } : {}),
      }));
      const { sent } = await crowd(devs, shared, PREFIX, 'cap-crowd', 3000, bodies);
      // Neither 5000 nor the default 4096 fits 3000: such requests got in only capped. The
      // crowd's bound check above covers them; here: some did get in.
      const capped = sent.filter((b) => b['max_completion_tokens'] !== undefined || ![100, 40].includes(Number(b['max_tokens'])));
      expect(capped.length, JSON.stringify(sent)).to.be.greaterThan(0);
    });
  });
});
