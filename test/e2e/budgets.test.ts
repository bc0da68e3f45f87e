/**
 * Token budgets end to end: real Envoy + `tollgate stack`, the dev issuer and upstream, the
 * official openai SDK. ext_authz reserves each request's estimate, ext_proc settles it to the
 * upstream's real usage, and an exhausted budget answers 429 `insufficient_quota`. Then two
 * replicas share one real redis-server: 50 concurrent requests against room for 10.
 */
import { spawn } from 'node:child_process';
import { expect } from 'chai';
import OpenAI from 'openai';
import type { DevIssuer } from '../../src/dev/issuer.js';
import { estimateReservation } from '../../src/metering/estimate.js';
import { periodWindow } from '../../src/budgets/period.js';
import { budgetKey } from '../../src/budgets/planner.js';
import type { BudgetView } from '../../src/budgets/view.js';
import { baseConfig, UPSTREAM_ENV, withDevs, withSharedRedis } from '../helpers/e2e.js';
import { ROOT, SOURCE_CLI, startStack, type StackProcess } from '../helpers/stack.js';

const MODEL = 'gpt-4o-mini';
const MESSAGES = [{ role: 'user' as const, content: 'hi' }];

function yaml(issuer: DevIssuer, budgets: string, extra = ''): string {
  return baseConfig({ issuer, extra: `tokenBudgets:\n${budgets}\n${extra}` });
}

async function readBudget(stack: StackProcess, query: string): Promise<BudgetView> {
  const base = (stack.ready.metrics ?? '').replace(/\/metrics$/, '');
  const res = await fetch(`${base}/budget?${query}`);
  expect(res.status, `GET /budget?${query}`).to.equal(200);
  const body = (await res.json()) as { budgets: BudgetView[] };
  const view = body.budgets[0];
  if (view === undefined) throw new Error('no budget in the answer');
  return view;
}

/** Polls until `check` returns true (settlement ends after the client got its response). */
async function eventually(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 15000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function usageLines(stacks: readonly StackProcess[]): Record<string, unknown>[] {
  return stacks.flatMap((s) => s.logLines().filter((l) => l['audit'] === 'usage'));
}

describe('e2e: token budgets through real Envoy', function () {
  this.timeout(120000);
  const devs = withDevs();

  describe('one replica, a tenant with 1,000 tokens a month', () => {
    let stack: StackProcess;
    let sdk: OpenAI;

    before(async () => {
      // A rate limit too: a request the budget refuses must use none of it.
      const limit = 'rateLimits:\n  - { name: per-user, match: { path: "/v1/*" }, requestsPerUnit: 20, unit: minute }\n';
      const config = yaml(devs.issuer, '  - { tenant: acme, maxTokens: 1000, period: month }', limit);
      stack = await startStack({ config, upstream: devs.upstream.url, env: UPSTREAM_ENV });
      const apiKey = await devs.issuer.mint({ sub: 'u1', email: 'ann@myorg.com', tenant_id: 'acme' });
      sdk = new OpenAI({ baseURL: `${stack.ready.envoy}/v1`, apiKey, maxRetries: 0, timeout: 20000 });
    });

    after(async () => {
      await stack?.stop();
    });

    it('charges each request the upstream’s usage and refuses with 429 insufficient_quota once exhausted', async () => {
      // Each request reserves only a small estimate (max_tokens: 10) but costs 300: its prompt
      // is far larger than estimated (the upstream never produces more than max_tokens).
      const costs = { 'x-dev-prompt-tokens': '290', 'x-dev-completion-tokens': '100' };
      const remaining: string[] = [];
      for (let i = 0; i < 4; i++) {
        let response: Response;
        if (i % 2 === 1) {
          const streamed = await sdk.chat.completions
            .create({ model: MODEL, messages: MESSAGES, max_tokens: 10, stream: true }, { headers: costs })
            .withResponse();
          response = streamed.response;
          let chunks = 0;
          for await (const chunk of streamed.data) chunks += chunk.choices.length > 0 ? 1 : 0;
          expect(chunks).to.be.greaterThan(0);
        } else {
          response = (await sdk.chat.completions.create({ model: MODEL, messages: MESSAGES, max_tokens: 10 }, { headers: costs }).withResponse()).response;
        }
        expect(response.headers.get('x-ratelimit-limit-tokens')).to.equal('1000');
        expect(response.headers.get('x-ratelimit-reset-tokens')).to.match(/^\d+h\d+m[\d.]+s$|^\d+m[\d.]+s$/);
        remaining.push(response.headers.get('x-ratelimit-remaining-tokens') ?? '');
        // The settlement finishes just after the response: wait for it, so the next Check sees it.
        await eventually(`settlement ${i + 1}`, () => usageLines([stack]).length === i + 1);
      }
      // Before request n, 300 × n tokens were used; the request holds its own estimate too.
      const estimate = estimateReservation('/v1/chat/completions', { model: MODEL, messages: MESSAGES, max_tokens: 10 }, MODEL, 4096).total;
      expect(remaining).to.deep.equal([0, 300, 600, 900].map((used) => String(1000 - used - estimate)));

      const lines = usageLines([stack]);
      for (const line of lines) {
        expect(line).to.include({ tenant: 'acme', inputTokens: 290, outputTokens: 10, totalTokens: 300, source: 'provider', charged: 300, settled: true, status: 200 });
        expect(line['budgets']).to.deep.equal(['tenant:acme']);
      }
      // The fourth was admitted with 100 left and still charged in full: the documented overshoot.
      expect(await readBudget(stack, 'tenant=acme')).to.include({ limit: 1000, used: 1200, reserved: 0, remaining: 0 });

      const before = devs.upstream.received.length;
      let error: unknown;
      try {
        await sdk.chat.completions.create({ model: MODEL, messages: MESSAGES, max_tokens: 10 }, { headers: costs });
      } catch (err) {
        error = err;
      }
      expect(error).to.be.instanceOf(OpenAI.RateLimitError);
      const e = error as InstanceType<typeof OpenAI.RateLimitError>;
      expect(e.status).to.equal(429);
      expect(e.code).to.equal('insufficient_quota');
      expect(e.type).to.equal('insufficient_quota');
      expect(e.message).to.include('token budget tenant:acme');
      expect(e.headers?.get('x-should-retry')).to.equal('false');
      expect(e.headers?.get('x-tollgate-reason')).to.equal('budget_exhausted');
      const resetsAt = Date.parse((await readBudget(stack, 'tenant=acme')).resetsAt);
      const retryAfter = Number(e.headers?.get('retry-after'));
      expect(retryAfter).to.be.within(Math.floor((resetsAt - Date.now()) / 1000) - 30, Math.ceil((resetsAt - Date.now()) / 1000) + 1);
      expect(e.headers?.get('x-ratelimit-remaining-tokens')).to.equal('0');
      expect(devs.upstream.received.length, 'the refused request never reached the upstream').to.equal(before);
    });

    it('a request refused by the budget uses none of the rate limit (one all-or-nothing admission)', async () => {
      // So far: 4 admitted chat requests and 1 refused by the budget. Three more refusals:
      for (let i = 0; i < 3; i++) {
        const refused = await sdk.chat.completions.create({ model: MODEL, messages: MESSAGES, max_tokens: 10 }).catch((e: unknown) => e);
        expect(refused).to.be.instanceOf(OpenAI.RateLimitError);
        expect((refused as InstanceType<typeof OpenAI.RateLimitError>).code).to.equal('insufficient_quota');
      }
      // GET /v1/models is not metered, so no budget applies: it shows what the limit counted.
      const { response } = await sdk.models.list().withResponse();
      expect(response.headers.get('x-ratelimit-limit-requests')).to.equal('20');
      expect(response.headers.get('x-ratelimit-remaining-requests'), '4 admitted + this one').to.equal(String(20 - 5));
    });

    it('tollgate budget shows the tenant’s used and remaining tokens', async () => {
      const out = await new Promise<{ code: number | null; stdout: string }>((resolve, reject) => {
        const child = spawn(process.execPath, [...SOURCE_CLI, 'budget', '--tenant', 'acme', '--url', stack.ready.metrics ?? ''], {
          cwd: ROOT,
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        let stdout = '';
        child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        child.once('error', reject);
        child.once('exit', (code) => resolve({ code, stdout }));
      });
      expect(out.code).to.equal(0);
      expect(out.stdout).to.match(/tenant:acme\s+month \d{4}-\d{2}\s+1,000\s+1,200\s+0\s+0\s/);
    });
  });

  describe('two replicas sharing one Redis', () => {
    const PREFIX = 'tollgate-budgets:';
    const ROOM = 10;
    const REQUESTS = 50;
    // Usage equal to the reservation: settled requests free nothing, so exactly ROOM get in.
    const body = { model: MODEL, messages: MESSAGES, max_tokens: 40 };
    const estimate = estimateReservation('/v1/chat/completions', body, MODEL, 4096);
    const limit = ROOM * estimate.total;
    const shared = withSharedRedis(devs, (redis) => {
      const store = `store:\n  redis: { url: ${redis.url()}, timeoutMs: 2000, onUnavailable: closed, keyPrefix: "${PREFIX}" }\n`;
      return yaml(devs.issuer, `  - { tenant: shared, maxTokens: ${limit}, period: day, timeZone: Europe/Berlin }`, store);
    });
    const { stacks } = shared;

    it(`admits exactly ${ROOM} of ${REQUESTS} concurrent requests, and the ledger equals the upstream’s usage`, async () => {
      const costs = { 'x-dev-prompt-tokens': String(estimate.prompt), 'x-dev-completion-tokens': String(estimate.maxOutput) };
      const clients = await Promise.all(
        Array.from({ length: REQUESTS }, async (_, i) => {
          const apiKey = await devs.issuer.mint({ sub: `c${i}`, email: `c${i}@myorg.com`, tenant_id: 'shared' });
          return new OpenAI({ baseURL: `${stacks[i % 2]!.ready.envoy}/v1`, apiKey, maxRetries: 0, timeout: 60000 });
        }),
      );
      const before = devs.upstream.received.length;
      const results = await Promise.all(
        clients.map(async (sdk, i) => {
          try {
            if (i % 2 === 1) {
              const stream = await sdk.chat.completions.create({ ...body, stream: true }, { headers: costs });
              let content = '';
              for await (const chunk of stream) content += chunk.choices[0]?.delta.content ?? '';
              expect(content).not.to.equal('');
            } else {
              await sdk.chat.completions.create(body, { headers: costs });
            }
            return 'ok';
          } catch (err) {
            if (!(err instanceof OpenAI.APIError)) throw err;
            return `${err.status} ${err.headers?.get('x-tollgate-reason') ?? ''}`;
          }
        }),
      );
      const admitted = results.filter((r) => r === 'ok').length;
      expect(admitted, JSON.stringify(results)).to.equal(ROOM);
      expect(results.filter((r) => r === '429 budget_exhausted')).to.have.length(REQUESTS - ROOM);
      const reachedUpstream = devs.upstream.received.slice(before);
      expect(reachedUpstream).to.have.length(ROOM);

      // Every admitted request settles (on whichever replica admitted it).
      await eventually('all settlements', () => usageLines(stacks).length === ROOM);
      const upstreamUsage = reachedUpstream.reduce(
        (sum, r) => sum + Number(r.headers['x-dev-prompt-tokens']) + Number(r.headers['x-dev-completion-tokens']),
        0,
      );
      const charged = usageLines(stacks).reduce((sum, l) => sum + Number(l['totalTokens']), 0);
      expect(charged).to.equal(upstreamUsage);

      const key = PREFIX + budgetKey({ tenant: 'shared', maxTokens: limit, period: 'day', timeZone: 'Europe/Berlin' }, periodWindow('day', 'Europe/Berlin', Date.now()));
      expect(await shared.inspect.hget(key, 'used')).to.equal(String(upstreamUsage));
      expect(Number(await shared.inspect.hget(key, 'reserved'))).to.equal(0);
      for (const stack of stacks) {
        expect(await readBudget(stack, 'tenant=shared')).to.include({ limit, used: upstreamUsage, reserved: 0, remaining: 0 });
      }
    });
  });
});
