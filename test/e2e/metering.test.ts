/**
 * Metering end to end: real Envoy + `tollgate stack` + dev issuer + dev upstream, with the
 * official openai SDK as the client. Each test uses its own subject, so its settlement is found
 * by the `audit: 'usage'` log line with that subject; the last test checks the tenant budget
 * (`/budget`) holds exactly the sum of what those lines charged.
 */
import { expect } from 'chai';
import OpenAI from 'openai';
import { baseConfig, withStack } from '../helpers/e2e.js';
import { extProcStats } from '../helpers/stack.js';

const HI = [{ role: 'user' as const, content: 'hi' }];
const TENANT = 'metering';

type Line = Record<string, unknown>;

describe('e2e: token metering through real Envoy', function () {
  this.timeout(60000);
  const e2e = withStack((issuer) =>
    baseConfig({
      issuer,
      extra: `
tokenBudgets:
  - tenant: ${TENANT}
    maxTokens: 10000000
    period: month
`,
    }),
  );
  let seq = 0;

  /** A client for a fresh subject, so its audit line is unambiguous. */
  async function caller(): Promise<{ client: OpenAI; subject: string }> {
    const subject = `metering-${++seq}`;
    const token = await e2e.issuer.mint({
      sub: subject,
      email: `${subject}@myorg.com`,
      tenant_id: TENANT,
    });
    const client = new OpenAI({
      baseURL: `${e2e.stack.ready.envoy}/v1`,
      apiKey: token,
      maxRetries: 0,
      timeout: 20000,
    });
    return { client, subject };
  }

  /** The settlement line of `subject`, waiting for it: ext_proc settles after the response. */
  async function usageLine(subject: string): Promise<Line> {
    const deadline = Date.now() + 10000;
    for (;;) {
      const lines = e2e.stack
        .logLines()
        .filter((l) => l['audit'] === 'usage' && l['subject'] === subject);
      if (lines.length > 0) {
        await new Promise((r) => setTimeout(r, 100)); // a second line would be a double charge
        const again = e2e.stack
          .logLines()
          .filter((l) => l['audit'] === 'usage' && l['subject'] === subject);
        expect(again, `one settlement for ${subject}`).to.have.length(1);
        return again[0]!;
      }
      if (Date.now() > deadline) throw new Error(`no usage line for ${subject}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /**
   * Proves which stream filter metered the request since `before` (Envoy's ext_proc counters):
   * the `observe` filter (observability mode) receives no answer, the `edit` filter one per
   * message it sends.
   */
  async function expectFilter(filter: 'edit' | 'observe', before: Record<string, number>): Promise<void> {
    const after = await extProcStats(e2e.stack);
    expect(after['streams_started'], 'one ext_proc stream').to.equal((before['streams_started'] ?? 0) + 1);
    const answered = (after['stream_msgs_received'] ?? 0) - (before['stream_msgs_received'] ?? 0);
    if (filter === 'observe') expect(answered, 'observability mode: Envoy took no answer').to.equal(0);
    else expect(answered, 'the edit filter waits for answers').to.be.greaterThan(0);
  }

  const dev = (prompt: number, completion: number, extra: Record<string, string> = {}) => ({
    headers: {
      'x-dev-prompt-tokens': String(prompt),
      'x-dev-completion-tokens': String(completion),
      ...extra,
    },
  });

  /**
   * A slow stream the client aborts after two content chunks; returns its settlement line, which
   * must be an estimate with output tokens.
   */
  async function abortAfterTwoChunks(body: {
    stream_options?: { include_usage: boolean };
    max_completion_tokens?: number;
  }): Promise<Line> {
    const { client, subject } = await caller();
    const controller = new AbortController();
    const stream = await client.chat.completions.create(
      { model: 'gpt-4o-mini', messages: HI, stream: true, ...body },
      {
        ...dev(13, 9, { 'x-dev-chunks': '20', 'x-dev-chunk-delay-ms': '300' }),
        signal: controller.signal,
      },
    );
    let seen = 0;
    try {
      for await (const chunk of stream) {
        if (chunk.choices[0]?.delta.content) seen++;
        if (seen === 2) controller.abort();
      }
    } catch (err) {
      expect((err as Error).name).to.match(/Abort/);
    }
    expect(seen).to.equal(2);
    const line = await usageLine(subject);
    expect(line).to.deep.include({ source: 'estimated', aborted: true, status: 200 });
    expect(line['outputTokens']).to.be.greaterThan(0);
    return line;
  }

  it('charges a non-streaming chat completion exactly its usage', async () => {
    const { client, subject } = await caller();
    const res = await client.chat.completions.create(
      { model: 'gpt-4o-mini', messages: HI },
      dev(11, 7),
    );
    expect(res.usage).to.deep.include({
      prompt_tokens: 11,
      completion_tokens: 7,
      total_tokens: 18,
    });
    const line = await usageLine(subject);
    expect(line).to.deep.include({
      inputTokens: 11,
      outputTokens: 7,
      totalTokens: 18,
      cachedInputTokens: 0,
      reasoningTokens: 0,
      source: 'provider',
      charged: 18,
      status: 200,
      aborted: false,
      tenant: TENANT,
      model: 'gpt-4o-mini',
    });
    expect(line['budgets']).to.deep.equal([`tenant:${TENANT}`]);
  });

  it('charges a stream without include_usage, which the client sees without the usage chunk', async () => {
    const { client, subject } = await caller();
    const stream = await client.chat.completions.create(
      { model: 'gpt-4o-mini', messages: HI, stream: true },
      dev(13, 9),
    );
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    // What reached the upstream asked for usage; what reached the client has no usage chunk.
    const sent = JSON.parse(e2e.upstream.requests('/v1/chat/completions').at(-1)!.body) as Record<
      string,
      unknown
    >;
    expect(sent['stream_options']).to.deep.equal({ include_usage: true });
    expect(chunks.length).to.be.greaterThan(2);
    expect(chunks.filter((c) => c.choices.length === 0)).to.deep.equal([]);
    expect(chunks.filter((c) => c.usage)).to.deep.equal([]);
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).to.contain('Hello');
    expect(await usageLine(subject)).to.deep.include({
      inputTokens: 13,
      outputTokens: 9,
      totalTokens: 22,
      source: 'provider',
      charged: 22,
    });
  });

  for (const [filter, limit] of [
    ['edit', {}],
    // Its own output limit leaves nothing to edit: the `observe` filter, which Envoy never waits for.
    ['observe', { max_completion_tokens: 100 }],
  ] as const)
    it(`passes the usage chunk to a client that asked for it, and charges it (${filter} filter)`, async () => {
      const { client, subject } = await caller();
      const before = await extProcStats(e2e.stack);
      const stream = await client.chat.completions.create(
        {
          model: 'gpt-4o-mini',
          messages: HI,
          stream: true,
          stream_options: { include_usage: true },
          ...limit,
        },
        dev(5, 30, { 'x-dev-chunks': '6', 'x-dev-chunk-delay-ms': '20' }),
      );
      const usage = [];
      for await (const chunk of stream)
        if (chunk.usage) usage.push({ choices: chunk.choices.length, ...chunk.usage });
      expect(usage).to.have.length(1);
      expect(usage[0]).to.deep.include({
        choices: 0,
        prompt_tokens: 5,
        completion_tokens: 30,
        total_tokens: 35,
      });
      expect(await usageLine(subject)).to.deep.include({
        totalTokens: 35,
        source: 'provider',
        charged: 35,
      });
      await expectFilter(filter, before);
    });

  // Streams of legacy completions and of the Responses API through both stream filters. The
  // proof of the route is Envoy's: the `observe` filter (observability mode) never waits for an
  // answer, so it receives none; the `edit` filter receives one per message it sends.
  for (const [filter, endpoint, limit] of [
    ['edit', 'completions', {}],
    ['observe', 'completions', { max_tokens: 50, stream_options: { include_usage: true } }],
    ['edit', 'responses', {}],
    ['observe', 'responses', { max_output_tokens: 50 }],
  ] as const)
    it(`charges a ${endpoint} stream its reported usage (${filter} filter)`, async () => {
      const { client, subject } = await caller();
      const before = await extProcStats(e2e.stack);
      const reported = e2e.upstream.reported.length;
      // Completions default to 16 output tokens (written when no limit is given): stay below.
      const opts = dev(6, 11, { 'x-dev-chunks': '5' });
      let text = '';
      if (endpoint === 'completions') {
        const stream = await client.completions.create({ model: 'gpt-4o-mini', prompt: 'hi', stream: true, ...limit }, opts);
        for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
      } else {
        const stream = await client.responses.create({ model: 'gpt-4o-mini', input: 'hi', stream: true, ...limit }, opts);
        for await (const event of stream) if (event.type === 'response.output_text.delta') text += event.delta;
      }
      expect(text).to.match(/^Hello/);
      expect(e2e.upstream.reported.slice(reported).map((r) => r.totalTokens)).to.deep.equal([17]);
      expect(await usageLine(subject)).to.deep.include({
        inputTokens: 6,
        outputTokens: 11,
        totalTokens: 17,
        source: 'provider',
        charged: 17,
      });
      await expectFilter(filter, before);
    });

  // A background response runs at the provider after the answer (or after the client left),
  // out of sight: its usage never reaches the gateway (`GET /v1/responses/{id}` is not metered).
  // Its output is charged at the limit the upstream was sent, so it cannot be had for free.
  it('charges a background Responses request its whole output limit (no usage arrives)', async () => {
    const { client, subject } = await caller();
    const queued = await client.responses.create(
      { model: 'gpt-4o-mini', input: 'hi', background: true, max_output_tokens: 300 },
      dev(9, 250),
    );
    expect(queued.status).to.equal('queued');
    const line = await usageLine(subject);
    expect(line).to.deep.include({ source: 'estimated', outputTokens: 300, aborted: false });
    expect(line['inputTokens']).to.be.greaterThan(0);
    expect(line['charged']).to.equal(line['totalTokens']);
  });

  it('charges a background Responses stream the client leaves its whole output limit', async () => {
    const { client, subject } = await caller();
    const controller = new AbortController();
    const stream = await client.responses.create(
      { model: 'gpt-4o-mini', input: 'hi', background: true, stream: true },
      { ...dev(9, 250, { 'x-dev-chunks': '20', 'x-dev-chunk-delay-ms': '200' }), signal: controller.signal },
    );
    let seen = 0;
    try {
      for await (const event of stream) if (event.type === 'response.output_text.delta' && ++seen === 2) controller.abort();
    } catch (err) {
      expect((err as Error).name).to.match(/Abort/);
    }
    // No limit of its own: the one the budget wrote (metering.defaultMaxOutputTokens) is what it may still produce.
    const sent = JSON.parse(e2e.upstream.requests('/v1/responses').at(-1)!.body) as Record<string, unknown>;
    expect(sent['max_output_tokens']).to.be.a('number');
    const line = await usageLine(subject);
    expect(line).to.deep.include({ source: 'estimated', aborted: true, outputTokens: sent['max_output_tokens'] });
  });

  it('charges an estimate (> 0) when the client aborts a slow stream after two chunks', async () => {
    const line = await abortAfterTwoChunks({});
    expect(line['inputTokens']).to.be.greaterThan(0);
    expect(line['totalTokens']).to.equal(
      (line['inputTokens'] as number) + (line['outputTokens'] as number),
    );
    expect(line['charged']).to.equal(line['totalTokens']);
  });

  it('charges an estimate when the client aborts a stream it asked usage for (observe filter, Envoy never waits)', async () => {
    // The client asked for usage and set its own limit: nothing to edit, so the `observe` filter.
    const line = await abortAfterTwoChunks({
      stream_options: { include_usage: true },
      max_completion_tokens: 50,
    });
    expect(line['charged']).to.equal(line['totalTokens']);
  });

  for (const [filter, body] of [
    ['edit', {}],
    ['observe', { stream_options: { include_usage: true }, max_completion_tokens: 50 }],
  ] as const) {
    it(`charges the prompt estimate when the client aborts a stream before its first byte (${filter} filter)`, async () => {
      const { client, subject } = await caller();
      const before = await extProcStats(e2e.stack);
      const controller = new AbortController();
      const request = client.chat.completions.create(
        { model: 'gpt-4o-mini', messages: HI, stream: true, ...body },
        { ...dev(13, 9, { 'x-dev-headers-delay-ms': '1500' }), signal: controller.signal },
      );
      setTimeout(() => controller.abort(), 300);
      const err = await request.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(String(err), 'the client gave up before the response').to.match(/abort/i);
      // Nothing reached the client, yet the prompt was sent upstream: its estimate is charged now, not
      // left reserved until the TTL (an observe-mode stream ends after Envoy's deferred close, <= 5 s).
      const line = await usageLine(subject);
      expect(line).to.deep.include({ source: 'estimated', aborted: true, outputTokens: 0 });
      expect(line['inputTokens']).to.be.greaterThan(0);
      expect(line['charged']).to.equal(line['totalTokens']);
      await expectFilter(filter, before);
    });
  }

  it('charges an estimate when the upstream resets the stream mid-way', async () => {
    const { client, subject } = await caller();
    const stream = await client.chat.completions.create(
      { model: 'gpt-4o-mini', messages: HI, stream: true },
      dev(13, 9, {
        'x-dev-chunks': '10',
        'x-dev-chunk-delay-ms': '50',
        'x-dev-reset-after-chunks': '3',
      }),
    );
    let text = '';
    const err = await (async () => {
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    })().then(
      () => undefined,
      (e: unknown) => e,
    );
    // (Envoy closes the client's HTTP/1.1 connection after its 1 s delayed_close_timeout.)
    expect(err, 'the client sees the stream break').to.be.instanceOf(Error);
    expect(text).to.match(/^Hello from the /);
    const line = await usageLine(subject);
    expect(line).to.deep.include({ source: 'estimated', aborted: true });
    expect(line['outputTokens']).to.be.greaterThan(0);
    expect(line['charged']).to.equal(line['totalTokens']);
  });

  it('counts a gzip-encoded response, which reaches the client intact', async () => {
    const { client, subject } = await caller();
    const res = await client.chat.completions
      .create({ model: 'gpt-4o-mini', messages: HI }, dev(17, 4, { 'x-dev-gzip': '1' }))
      .withResponse();
    expect(res.response.headers.get('content-encoding')).to.equal('gzip'); // Envoy passed it through
    expect(res.data.choices[0]?.message.content).to.match(/^Hello from the Tollgate/);
    expect(res.data.usage).to.deep.include({ total_tokens: 21 });
    expect(await usageLine(subject)).to.deep.include({ totalTokens: 21, source: 'provider' });
  });

  it('counts a gzip-encoded stream', async () => {
    const { client, subject } = await caller();
    const stream = await client.chat.completions.create(
      { model: 'gpt-4o-mini', messages: HI, stream: true, stream_options: { include_usage: true } },
      dev(3, 8, { 'x-dev-gzip': '1' }),
    );
    let total = 0;
    for await (const chunk of stream) total += chunk.usage?.total_tokens ?? 0;
    expect(total).to.equal(11);
    expect(await usageLine(subject)).to.deep.include({ totalTokens: 11, source: 'provider' });
  });

  it('removes the usage chunk from a gzip-encoded stream too (the client gets it decoded)', async () => {
    const { client, subject } = await caller();
    const res = await client.chat.completions
      .create(
        { model: 'gpt-4o-mini', messages: HI, stream: true },
        dev(4, 6, { 'x-dev-gzip': '1' }),
      )
      .withResponse();
    expect(res.response.headers.get('content-encoding')).to.equal(null);
    const chunks = [];
    for await (const chunk of res.data) chunks.push(chunk);
    expect(chunks.filter((c) => c.usage || c.choices.length === 0)).to.deep.equal([]);
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).to.match(/^Hello from/);
    expect(await usageLine(subject)).to.deep.include({ totalTokens: 10, source: 'provider' });
  });

  it('charges nothing for an upstream 500 and releases the reservation', async () => {
    const { client, subject } = await caller();
    const err = await client.chat.completions
      .create({ model: 'gpt-4o-mini', messages: HI }, dev(10, 10, { 'x-dev-status': '500' }))
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).to.be.instanceOf(OpenAI.InternalServerError);
    expect(await usageLine(subject)).to.deep.include({
      charged: 0,
      totalTokens: 0,
      reason: 'upstream_status_500',
    });
  });

  it('charges embeddings and the Responses API', async () => {
    const a = await caller();
    const emb = await a.client.embeddings.create(
      { model: 'text-embedding-3-small', input: ['a', 'b'] },
      dev(6, 0),
    );
    expect(emb.data).to.have.length(2);
    expect(await usageLine(a.subject)).to.deep.include({
      inputTokens: 6,
      outputTokens: 0,
      totalTokens: 6,
      source: 'provider',
    });
    const b = await caller();
    const resp = await b.client.responses.create({ model: 'gpt-4o-mini', input: 'hi' }, dev(9, 12));
    expect(resp.output_text).to.match(/^Hello/);
    expect(await usageLine(b.subject)).to.deep.include({
      inputTokens: 9,
      outputTokens: 12,
      totalTokens: 21,
      source: 'provider',
    });
  });

  it('meters a JSON body larger than Envoy buffers, streamed through intact', async () => {
    const { client, subject } = await caller();
    // ~2.6 MB, beyond Envoy's 1 MiB buffer (in BUFFERED mode such a response stalls until the
    // client times out), so it is streamed chunk by chunk.
    const res = await client.chat.completions.create(
      { model: 'gpt-4o-mini', messages: HI },
      dev(2, 3, { 'x-dev-chunks': '400000' }),
    );
    const content = res.choices[0]?.message.content ?? '';
    expect(content.length).to.be.greaterThan(2_000_000);
    expect(content.startsWith('Hello from the Tollgate')).to.equal(true);
    expect(await usageLine(subject)).to.deep.include({ totalTokens: 5, source: 'provider' });
  });

  it('leaves the tenant budget holding exactly what was charged, with nothing reserved', async () => {
    const charged = e2e.stack
      .logLines()
      .filter((l) => l['audit'] === 'usage' && l['tenant'] === TENANT)
      .reduce((sum, l) => sum + (l['charged'] as number), 0);
    expect(charged).to.be.greaterThan(0);
    const base = e2e.stack.ready.metrics!.replace(/\/metrics$/, '');
    const res = await fetch(`${base}/budget?tenant=${TENANT}`);
    expect(res.status).to.equal(200);
    const { budgets } = (await res.json()) as { budgets: { used: number; reserved: number }[] };
    expect(budgets).to.have.length(1);
    expect(budgets[0]).to.deep.include({ used: charged, reserved: 0 });
  });
});
