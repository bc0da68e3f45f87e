/**
 * Nothing is held between the Check and the response stream (DESIGN 1.9): Envoy's ext_authz
 * cluster reaches one sidecar process and its ext_proc cluster another, sharing one real
 * redis-server, and every request is still metered exactly — the hand-off travels in Envoy's
 * dynamic metadata, not in a process.
 */
import { expect } from 'chai';
import OpenAI from 'openai';
import { budgetKey } from '../../src/budgets/planner.js';
import { periodWindow } from '../../src/budgets/period.js';
import type { RunningEnvoy } from '../../src/stack/envoy.js';
import { baseConfig, withDevs } from '../helpers/e2e.js';
import { RedisServer } from '../helpers/redis-server.js';
import { startServe, type ServeProcess } from '../helpers/serve.js';
import { startSplitEnvoy } from '../helpers/split-envoy.js';
import { Redis } from 'ioredis';

const PREFIX = 'stateless:';
const TENANT = 'acme';

describe('e2e: stateless hand-off — ext_authz and ext_proc on two sidecar processes', function () {
  this.timeout(90_000);
  const devs = withDevs();
  let redis: RedisServer | undefined;
  let inspect: Redis | undefined;
  let authz: ServeProcess | undefined;
  let extProc: ServeProcess | undefined;
  let envoy: RunningEnvoy | undefined;
  let token = '';

  before(async () => {
    redis = await RedisServer.start();
    const config = baseConfig({
      issuer: devs.issuer,
      extra: `identityHeaders: { x-tenant-id: tenant }
tokenBudgets:
  - { tenant: ${TENANT}, maxTokens: 1000000, period: day }
store:
  redis: { url: ${redis.url()}, timeoutMs: 2000, onUnavailable: closed, keyPrefix: "${PREFIX}" }
`,
    });
    const env = { TEST_UPSTREAM_KEY: 'sk-test' };
    [authz, extProc] = await Promise.all([startServe({ config, env }), startServe({ config, env })]);
    const port = (s: ServeProcess) => Number(s.grpc.split(':').pop());
    envoy = await startSplitEnvoy(config, [port(authz)], [port(extProc)], devs.upstream.url);
    inspect = new Redis(redis.url(), { lazyConnect: true, maxRetriesPerRequest: 1 });
    await inspect.connect();
    token = await devs.issuer.mint({ sub: 'ann', tenant_id: TENANT });
  });

  after(async () => {
    inspect?.disconnect();
    await envoy?.stop();
    await Promise.all([authz?.stop(), extProc?.stop()]);
    await redis?.stop();
  });

  const ledger = async (): Promise<{ used: number; reserved: number }> => {
    const key = PREFIX + budgetKey({ tenant: TENANT, maxTokens: 1, period: 'day', timeZone: 'UTC' }, periodWindow('day', 'UTC', Date.now()));
    const [used, reserved] = await (inspect as Redis).hmget(key, 'used', 'reserved');
    return { used: Number(used ?? 0), reserved: Number(reserved ?? 0) };
  };
  const usageLines = (s: ServeProcess | undefined) => (s?.logLines() ?? []).filter((l) => l['audit'] === 'usage');
  const decisionLines = (s: ServeProcess | undefined) => (s?.logLines() ?? []).filter((l) => l['audit'] === 'decision');

  it('meters every request exactly although the process that admitted it never sees its response', async () => {
    const client = new OpenAI({ baseURL: `${envoy?.url}/v1`, apiKey: token, maxRetries: 0 });
    const before = devs.upstream.reported.length;
    const messages = [{ role: 'user' as const, content: 'hello there' }];
    const plain = await client.chat.completions.create({ model: 'gpt-4o-mini', messages });
    expect(plain.usage?.total_tokens).to.be.above(0);
    // A stream that did not ask for usage: the other process injects it and strips the chunk.
    const chunks = [];
    for await (const chunk of await client.chat.completions.create({ model: 'gpt-4o-mini', messages, stream: true })) chunks.push(chunk);
    expect(chunks.filter((c) => c.usage)).to.deep.equal([]);
    await client.responses.create({ model: 'gpt-4o-mini', input: 'hi', max_output_tokens: 50 });
    await client.embeddings.create({ model: 'text-embedding-3-small', input: ['a', 'b'] });
    const concurrent = await Promise.all(
      Array.from({ length: 12 }, (_, i) => client.chat.completions.create({ model: 'gpt-4o-mini', messages, max_tokens: 20 + i })),
    );
    expect(concurrent).to.have.length(12);

    const requests = 4 + 12;
    const deadline = Date.now() + 15_000;
    while (usageLines(extProc).length < requests && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    // The Check's process decided every request and settled none; the other settled them all.
    expect(decisionLines(authz).filter((l) => l['decision'] === 'allow')).to.have.length(requests);
    expect(usageLines(authz)).to.deep.equal([]);
    expect(decisionLines(extProc)).to.deep.equal([]);
    const settled = usageLines(extProc);
    expect(settled).to.have.length(requests);
    expect(settled.every((l) => l['source'] === 'provider' && l['settled'] === true && l['tenant'] === TENANT)).to.equal(true);
    expect(new Set(settled.map((l) => l['requestId']))).to.deep.equal(new Set(decisionLines(authz).map((l) => l['requestId'])));

    // The shared ledger holds exactly what the upstream reported, and nothing stays reserved.
    const upstream = devs.upstream.reported.slice(before).reduce((sum, r) => sum + r.totalTokens, 0);
    expect(await ledger()).to.deep.equal({ used: upstream, reserved: 0 });
  });

  it('charges a stream the client aborts, on the process that saw it end', async () => {
    const before = await ledger();
    const controller = new AbortController();
    const res = await fetch(`${envoy?.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'x-dev-chunks': '50', 'x-dev-chunk-delay-ms': '20' },
      body: JSON.stringify({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'tell me a long story' }] }),
      signal: controller.signal,
    });
    const reader = res.body?.getReader();
    await reader?.read();
    await reader?.read();
    controller.abort();
    const deadline = Date.now() + 10_000;
    let estimated: Record<string, unknown> | undefined;
    while (estimated === undefined && Date.now() < deadline) {
      estimated = usageLines(extProc).find((l) => l['source'] === 'estimated');
      if (estimated === undefined) await new Promise((r) => setTimeout(r, 100));
    }
    expect(estimated).to.deep.include({ aborted: true, settled: true });
    const after = await ledger();
    expect(after.used - before.used).to.equal(estimated?.['totalTokens']);
    expect(after.reserved).to.equal(0);
  });
});
