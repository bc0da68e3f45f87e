/**
 * Concurrency limits end to end: two `tollgate stack` replicas (real Envoy each) on one real
 * redis-server, the dev issuer and upstream, the official openai SDK. With `maxConcurrent: 2`,
 * five parallel streams through both replicas: exactly two are admitted while they are open,
 * three get the 429 envelope, and once the streams end new requests are admitted again. An
 * aborted stream frees its slot; the slots live in Redis, so any replica frees any slot.
 */
import { expect } from 'chai';
import OpenAI from 'openai';
import { bucketKey } from '../../src/limits/rate-limit.js';
import { baseConfig, withDevs, withSharedRedis } from '../helpers/e2e.js';
import { eventually } from '../helpers/serve.js';
import type { StackProcess } from '../helpers/stack.js';

const MODEL = 'gpt-4o-mini';
const MESSAGES = [{ role: 'user' as const, content: 'hi' }];
const PREFIX = 'tollgate-cc:';
const USER = 'ann@cc.test';
const SLOTS = PREFIX + bucketKey('streams', USER, 'cc');
/** A stream the upstream keeps open for about 4 s: 40 chunks, 100 ms apart. */
const SLOW = { 'x-dev-chunks': '40', 'x-dev-chunk-delay-ms': '100' };

type Stream = AsyncIterable<OpenAI.Chat.Completions.ChatCompletionChunk> & { controller: AbortController };

function usageLines(stacks: readonly StackProcess[]): Record<string, unknown>[] {
  return stacks.flatMap((s) => s.logLines().filter((l) => l['audit'] === 'usage' && l['user'] === USER));
}

const drain = async (stream: Stream): Promise<number> => {
  let chunks = 0;
  for await (const chunk of stream) if (chunk.choices[0]?.delta.content) chunks++;
  return chunks;
};

describe('e2e: a concurrency limit through real Envoy, two replicas on Redis', function () {
  this.timeout(120000);
  const devs = withDevs();
  const shared = withSharedRedis(devs, (redis) =>
    baseConfig({
      issuer: devs.issuer,
      extra: `rateLimits:
  - { name: streams, maxConcurrent: 2, key: user }
store:
  redis: { url: ${redis.url()}, timeoutMs: 2000, onUnavailable: closed, keyPrefix: "${PREFIX}" }
`,
    }),
  );
  const { stacks } = shared;
  let sdks: OpenAI[] = [];

  before(async () => {
    const apiKey = await devs.issuer.mint({ sub: 'ann', email: USER, tenant_id: 'cc' });
    // No retries: the SDK would otherwise honour retry-after and try again on its own.
    sdks = stacks.map((s) => new OpenAI({ baseURL: `${s.ready.envoy}/v1`, apiKey, maxRetries: 0, timeout: 20000 }));
  });

  const open = (i: number, headers: Record<string, string> = SLOW): Promise<Stream> =>
    sdks[i % 2]!.chat.completions.create({ model: MODEL, messages: MESSAGES, stream: true }, { headers }) as Promise<Stream>;
  const inFlight = async (): Promise<number> => Number((await shared.inspect.hget(SLOTS, 'reserved')) ?? 0);

  it('admits exactly 2 of 5 parallel streams, refuses 3 with the 429 envelope, and admits again once they end', async () => {
    const settled = await Promise.allSettled([0, 1, 2, 3, 4].map((i) => open(i)));
    const admitted = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    const refused = settled.flatMap((s) => (s.status === 'rejected' ? [s.reason as unknown] : []));
    expect(admitted).to.have.length(2);
    expect(refused).to.have.length(3);
    for (const e of refused) {
      expect(e).to.be.instanceOf(OpenAI.RateLimitError);
      const r = e as InstanceType<typeof OpenAI.RateLimitError>;
      expect([r.status, r.code, r.type, r.headers?.get('x-tollgate-reason'), r.headers?.get('retry-after')]).to.deep.equal([
        429, 'rate_limit_exceeded', 'requests', 'concurrency_limited', '1',
      ]);
      expect(r.message).to.equal('429 Concurrency limit reached for streams: Limit 2 requests in flight. Please try again when one of them has finished.');
    }
    // Both streams are still open: their slots are held in Redis, and a sixth call is refused.
    expect(await inFlight()).to.equal(2);
    const sixth = await open(5).catch((e: unknown) => e);
    expect(sixth).to.be.instanceOf(OpenAI.RateLimitError);

    expect(await Promise.all(admitted.map(drain))).to.deep.equal([40, 40]);
    await eventually(() => (usageLines(stacks).length === 2 ? true : undefined), 'both streams settled');
    expect(await inFlight()).to.equal(0);
    // A non-streaming call and a stream, on each replica: admitted again.
    const res = await sdks[0]!.chat.completions.create({ model: MODEL, messages: MESSAGES });
    expect(res.choices[0]?.message.content).to.be.a('string');
    expect(await drain(await open(1, { 'x-dev-chunks': '3' }))).to.equal(3);
    await eventually(() => (usageLines(stacks).length === 4 ? true : undefined), 'all four settled');
  });

  it('an aborted stream frees its slot while another stream stays open', async () => {
    await eventually(async () => ((await inFlight()) === 0 ? true : undefined), 'no slot held');
    const before = usageLines(stacks).length;
    const held = await open(0);
    const aborted = await open(1);
    expect(await inFlight()).to.equal(2);
    expect(await open(0).catch((e: unknown) => e)).to.be.instanceOf(OpenAI.RateLimitError);

    // Read one chunk, then the client goes away.
    for await (const chunk of aborted) {
      void chunk;
      break;
    }
    aborted.controller.abort();
    await eventually(() => (usageLines(stacks).length === before + 1 ? true : undefined), 'the aborted stream settled');
    const abortedLines = usageLines(stacks).filter((l) => l['aborted'] === true);
    expect(abortedLines, JSON.stringify(usageLines(stacks))).to.have.length(1);
    expect(abortedLines[0]).to.include({ settled: true, source: 'estimated' });
    expect(await inFlight()).to.equal(1);

    // The freed slot is taken by a new stream while the first is still open.
    const third = await open(1, { 'x-dev-chunks': '3' });
    expect(await drain(third)).to.equal(3);
    expect(await drain(held)).to.equal(40);
  });
});
