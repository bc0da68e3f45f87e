import { expect } from 'chai';
import zlib from 'node:zlib';
import { BASE_PROCESSING_MODE } from '../../../src/response/mode.js';
import { MAX_BUFFERED_RESPONSE_BYTES, responseBodyMode } from '../../../src/response/response-side.js';
import { MeteringExchange } from '../../../src/response/flow.js';
import { type ExchangeDeps } from '../../../src/response/state.js';
import type { Handoff } from '../../../src/handoff/handoff.js';
import { estimatePrompt } from '../../../src/metering/estimate.js';
import { fixture, splitAt } from '../metering/helpers.js';
import {
  ADMITTED_AT,
  JSON_TYPE,
  RecordingLedger,
  SSE,
  admission,
  feedResponse,
  metadataOf,
  headers,
} from './helpers.js';

const CHAT_PATH = '/v1/chat/completions';
const CHAT_USAGE = { inputTokens: 19, outputTokens: 13, totalTokens: 32, source: 'provider' };

/** The hand-off of the exchange under test; `meta()` carries it, as Envoy forwards it. */
let current: Handoff = admission();

function setup(a: Handoff, over: Partial<ExchangeDeps> = {}) {
  current = a;
  const ledger = new RecordingLedger();
  const errors: unknown[] = [];
  const ex = new MeteringExchange({
    ledger,
    now: () => ADMITTED_AT + 250,
    onError: (err) => errors.push(err),
    ...over,
  });
  return { ex, ledger, errors };
}

/** The forwarded metadata: the current hand-off, or under another id none at all. */
const meta = (id = 'adm-1') => (id === current.id ? metadataOf(current) : { admission: id, requestId: 'req-1' });

describe('response/MeteringExchange', () => {
  it('uses headers-only as its base mode (bodies are asked for per request)', () => {
    expect(BASE_PROCESSING_MODE).to.deep.equal({
      requestHeaders: 'send',
      responseHeaders: 'send',
      requestBody: 'none',
      responseBody: 'none',
      requestTrailers: 'skip',
      responseTrailers: 'skip',
    });
  });

  it('does nothing for a request without an admission (e.g. an ext_authz deny reply)', async () => {
    const { ex, ledger } = setup(admission());
    // Envoy sends response headers of a local deny reply without any request headers message.
    expect(await headers(ex, 403, JSON_TYPE)).to.equal(undefined);
    expect(ex.requestHeaders({}, {}, false)).to.equal(undefined);
    expect(ex.requestHeaders({}, meta('unknown'), false)).to.equal(undefined);
    await ex.end('complete');
    expect(ledger.calls).to.deep.equal([]);
  });

  it('injects include_usage into a streaming chat request, strips the usage chunk and settles it', async () => {
    const body = {
      model: 'gpt-4o-mini',
      stream: true,
      messages: [{ role: 'user', content: 'hi' }],
    };
    const { ex, ledger } = setup(admission({ body }));
    expect(ex.requestHeaders({}, meta(), false)).to.deep.equal({
      modeOverride: { requestBody: 'buffered' },
    });
    // Envoy's bytes, with a spacing the client chose: the splice keeps all of them.
    const raw = Buffer.from(
      '{"model":"gpt-4o-mini", "stream":true,\n "messages":[{"role":"user","content":"hi"}]}',
    );
    const action = ex.requestBody(raw, true);
    const sent = action!.body!.toString('utf8');
    expect(sent).to.equal(
      `${raw.toString('utf8').slice(0, -1)},"stream_options":{"include_usage":true}}`,
    );
    expect(action!.setHeaders).to.deep.equal({ 'content-length': String(Buffer.byteLength(sent)) });

    expect(await headers(ex, 200, SSE)).to.deep.equal({
      modeOverride: { responseBody: 'streamed' },
    });
    const stream = fixture('chat-with-usage.sse');
    const { forwarded } = await feedResponse(ex, splitAt(stream, [100, 700, 701, 2000]));
    expect(forwarded.toString('utf8')).not.to.contain('"choices":[]');
    expect(forwarded.toString('utf8')).to.contain('data: [DONE]');
    await ex.end('complete');
    await ex.end('aborted'); // a second end never settles twice
    expect(ledger.calls).to.have.length(1);
    expect(ledger.calls[0]).to.deep.include({ kind: 'settle' });
    const call = ledger.calls[0] as Extract<(typeof ledger.calls)[0], { kind: 'settle' }>;
    expect(call.usage).to.deep.include(CHAT_USAGE);
    expect(call.info).to.deep.equal({ status: 200, latencyMs: 250, aborted: false });
  });

  it('decodes a compressed stream it must edit and forwards it plain, without the usage chunk', async () => {
    const body = { model: 'gpt-4o-mini', stream: true };
    const { ex, ledger } = setup(admission({ body }));
    ex.requestHeaders({}, meta(), false);
    ex.requestBody(Buffer.from(JSON.stringify(body)), true);
    const stream = fixture('chat-with-usage.sse');
    const gz = zlib.gzipSync(stream);
    expect(await headers(ex, 200, { ...SSE, 'content-encoding': 'gzip' })).to.deep.equal({
      modeOverride: { responseBody: 'streamed' },
      removeHeaders: ['content-encoding', 'content-length'],
    });
    const { forwarded } = await feedResponse(ex, splitAt(gz, [7, 300, 301, 900]));
    const text = forwarded.toString('utf8');
    expect(text).not.to.contain('"choices":[]');
    expect(text.startsWith('data: {"id":"chatcmpl-')).to.equal(true);
    expect(text.endsWith('data: [DONE]\n\n')).to.equal(true);
    await ex.end('complete');
    expect(ledger.calls[0]).to.have.property('usage').that.deep.include(CHAT_USAGE);
  });

  it('leaves a stream with include_usage alone: no body override, every byte forwarded', async () => {
    const body = { model: 'gpt-4o-mini', stream: true, stream_options: { include_usage: true } };
    const { ex, ledger } = setup(admission({ body }));
    expect(ex.requestHeaders({}, meta(), false)).to.equal(undefined);
    await headers(ex, 200, SSE);
    const stream = fixture('chat-with-usage.sse');
    const { forwarded, actions } = await feedResponse(ex, splitAt(stream, [333, 1200]));
    expect(forwarded.equals(stream)).to.equal(true);
    expect(actions.every((a) => a === undefined)).to.equal(true);
    await ex.end('complete');
    expect(ledger.calls).to.have.length(1);
    expect(ledger.calls[0]).to.have.nested.property('usage.totalTokens', 32);
  });

  it('charges an estimate (> 0) when the client aborts mid-stream', async () => {
    const body = {
      model: 'gpt-4o-mini',
      stream: true,
      messages: [{ role: 'user', content: 'hi' }],
    };
    const { ex, ledger } = setup(admission({ body }));
    ex.requestHeaders({}, meta(), false);
    ex.requestBody(Buffer.from(JSON.stringify(body)), true);
    await headers(ex, 200, SSE);
    const events = fixture('chat-without-usage.sse').toString('utf8').split('\n\n');
    await ex.responseBody(Buffer.from(`${events[0]}\n\n${events[1]}\n\n`), false);
    await ex.end('aborted');
    const call = ledger.calls[0]!;
    expect(call.kind).to.equal('settle');
    if (call.kind !== 'settle') return;
    expect(call.usage.source).to.equal('estimated');
    // The prompt is counted with the tokenizer now, not taken from the quick admission estimate.
    expect(call.usage.inputTokens)
      .to.equal(estimatePrompt(CHAT_PATH, body, 'gpt-4o-mini'))
      .and.not.equal(20);
    expect(call.usage.outputTokens).to.be.greaterThan(0);
    expect(call.info).to.deep.include({ status: 200, aborted: true });
  });

  it('charges the prompt when the client leaves before any response: counted when this stream saw the body', async () => {
    const body = {
      model: 'gpt-4o-mini',
      stream: true,
      messages: [{ role: 'user', content: 'Say hello to the world' }],
    };
    const { ex, ledger } = setup(admission({ body }));
    // A stream without include_usage: the body is asked for (to inject it) and so is seen.
    expect(ex.requestHeaders({}, meta(), false)).to.deep.equal({ modeOverride: { requestBody: 'buffered' } });
    ex.requestBody(Buffer.from(JSON.stringify(body)), true);
    await ex.end('aborted');
    const prompt = estimatePrompt(CHAT_PATH, body, 'gpt-4o-mini');
    expect(prompt).to.equal(3 + 3 + 1 + 5);
    expect(ledger.calls).to.deep.equal([
      {
        kind: 'settle',
        admission: ledger.calls[0]!.admission,
        usage: { inputTokens: prompt, outputTokens: 0, totalTokens: prompt, source: 'estimated' },
        info: { status: 0, latencyMs: 250, aborted: true },
      },
    ]);
  });

  it('charges the Check\'s quick prompt estimate when the body did not pass this stream', async () => {
    const body = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say hello to the world' }] };
    const { ex, ledger } = setup(admission({ body }));
    expect(ex.requestHeaders({}, meta(), false)).to.equal(undefined); // nothing to edit: not asked for
    await ex.end('aborted');
    const call = ledger.calls[0];
    expect(call?.kind === 'settle' && call.usage).to.deep.equal({ inputTokens: 20, outputTokens: 0, totalTokens: 20, source: 'estimated' });
  });

  it('buffers a small JSON body, reads its usage and forwards it untouched', async () => {
    const { ex, ledger } = setup(admission({ body: { model: 'gpt-4o-mini', messages: [] } }));
    expect(ex.requestHeaders({}, meta(), false)).to.equal(undefined);
    const json = Buffer.from(
      JSON.stringify({
        object: 'chat.completion',
        usage: {
          prompt_tokens: 7,
          completion_tokens: 5,
          total_tokens: 12,
          prompt_tokens_details: { cached_tokens: 3 },
        },
      }),
    );
    expect(
      await headers(ex, 200, { ...JSON_TYPE, 'content-length': String(json.length) }),
    ).to.deep.equal({
      modeOverride: { responseBody: 'buffered' },
    });
    expect(await ex.responseBody(json, true)).to.equal(undefined);
    await ex.end('complete');
    expect(ledger.calls[0]).to.have.property('usage').that.deep.equals({
      inputTokens: 7,
      outputTokens: 5,
      totalTokens: 12,
      cachedInputTokens: 3,
      source: 'provider',
    });
  });

  it('reads usage from a gzip-encoded JSON body without changing it', async () => {
    const a = admission({
      path: '/v1/embeddings',
      model: 'text-embedding-3-small',
      body: { input: 'x' },
    });
    const { ex, ledger } = setup(a);
    ex.requestHeaders({}, meta(), false);
    const gz = zlib.gzipSync(
      JSON.stringify({ object: 'list', data: [], usage: { prompt_tokens: 9, total_tokens: 9 } }),
    );
    await headers(ex, 200, {
      ...JSON_TYPE,
      'content-encoding': 'gzip',
      'content-length': String(gz.length),
    });
    const { forwarded } = await feedResponse(ex, splitAt(gz, [10, 20]));
    expect(forwarded.equals(gz)).to.equal(true);
    await ex.end('complete');
    expect(ledger.calls[0])
      .to.have.property('usage')
      .that.deep.include({ inputTokens: 9, totalTokens: 9, source: 'provider' });
  });

  it('releases the reservation of an upstream error and asks for no body', async () => {
    const { ex, ledger } = setup(admission({ body: { model: 'gpt-4o-mini', stream: true } }));
    ex.requestHeaders({}, meta(), false);
    expect(await headers(ex, 500, JSON_TYPE)).to.equal(undefined);
    await ex.end('complete');
    expect(ledger.calls.map((c) => c.kind === 'release' && c.reason)).to.deep.equal([
      'upstream_status_500',
    ]);
  });

  it('releases endpoints that use no tokens without asking for their body', async () => {
    const { ex, ledger } = setup(admission({ method: 'GET', path: '/v1/files' }));
    ex.requestHeaders({}, meta(), true);
    expect(await headers(ex, 200, JSON_TYPE)).to.equal(undefined);
    await ex.end('complete');
    expect(ledger.calls.map((c) => c.kind === 'release' && c.reason)).to.deep.equal([
      'not_metered',
    ]);
  });

  it('settles the Responses API from its JSON body', async () => {
    const a = admission({ path: '/v1/responses', body: { model: 'gpt-4o-mini', input: 'hi' } });
    const { ex, ledger } = setup(a);
    expect(ex.requestHeaders({}, meta(), false)).to.equal(undefined);
    await headers(ex, 200, JSON_TYPE); // no content-length: streamed, chunk by chunk
    const json = Buffer.from(
      JSON.stringify({
        object: 'response',
        usage: {
          input_tokens: 4,
          output_tokens: 6,
          total_tokens: 10,
          output_tokens_details: { reasoning_tokens: 2 },
        },
      }),
    );
    await feedResponse(ex, splitAt(json, [5, 40]));
    await ex.end('complete');
    expect(ledger.calls[0]).to.have.property('usage').that.deep.equals({
      inputTokens: 4,
      outputTokens: 6,
      totalTokens: 10,
      reasoningTokens: 2,
      source: 'provider',
    });
  });

  it('never throws: a failing ledger and a hand-off that cannot be read are only passed through', async () => {
    const boom = new Error('ledger down');
    const a = admission({ body: { model: 'gpt-4o-mini' } });
    const { ex, errors } = setup(a, {
      ledger: {
        settle: () => Promise.reject(boom),
        release: () => {
          throw boom;
        },
      },
    });
    ex.requestHeaders({}, meta(), false);
    await headers(ex, 200, JSON_TYPE);
    await ex.end('complete');
    expect(errors).to.deep.equal([boom]);

    const ledger = new RecordingLedger();
    const broken = new MeteringExchange({ ledger, onError: (err) => errors.push(err) });
    // Metadata a different Envoy filter could have left: no hand-off, nothing metered.
    for (const metadata of [{ admission: 'adm-1', handoff: 'junk' }, { admission: 'adm-1', handoff: { m: 'POST' } }, { admission: 42 }]) {
      expect(broken.requestHeaders({}, metadata, false)).to.equal(undefined);
    }
    await broken.end('complete');
    expect(ledger.calls).to.deep.equal([]);
    expect(errors).to.have.length(1);
  });
});

describe('response/writing the output limit of an admission (fitToBudget)', () => {
  const reservation = {
    id: 'adm-1',
    budgets: [{ key: 'tb:tenant:marketing:2026-11', expiresAtMs: 2e12 }],
    names: ['tenant:marketing'],
    reserved: [400],
  };
  const limited = (over: Partial<Handoff> & { body?: unknown }) =>
    admission({ reservation, outputLimit: 78, ...over });

  it('asks for the body of a non-streaming request and splices the limit into its bytes', () => {
    const body = { model: 'gpt-4o-mini', n: 5, messages: [{ role: 'user', content: 'hi' }] };
    const { ex, ledger } = setup(limited({ body }));
    expect(ex.requestHeaders({}, meta(), false)).to.deep.equal({
      modeOverride: { requestBody: 'buffered' },
    });
    const raw = Buffer.from('{"model":"gpt-4o-mini","n":5,\n  "messages":[{"role":"user","content":"hi"}]}');
    const action = ex.requestBody(raw, true);
    const sent = action!.body!.toString('utf8');
    expect(sent).to.equal(`${raw.toString('utf8').slice(0, -1)},"max_completion_tokens":78}`);
    expect(action!.setHeaders).to.deep.equal({ 'content-length': String(Buffer.byteLength(sent)) });
    expect(action).not.to.have.property('refuse');
    expect(ledger.calls).to.deep.equal([]);
  });

  it('lowers max_tokens of a stream and injects include_usage in the same body', async () => {
    const body = { model: 'gpt-4o-mini', stream: true, max_tokens: 5000, messages: [] };
    const { ex } = setup(limited({ body }));
    expect(ex.requestHeaders({}, meta(), false)).to.deep.equal({
      modeOverride: { requestBody: 'buffered' },
    });
    const sent = JSON.parse(ex.requestBody(Buffer.from(JSON.stringify(body)), true)!.body!.toString('utf8')) as unknown;
    expect(sent).to.deep.equal({ ...body, max_tokens: 78, stream_options: { include_usage: true } });
    // the usage chunk is ours: it is stripped from the response
    expect(await headers(ex, 200, SSE)).to.deep.equal({ modeOverride: { responseBody: 'streamed' } });
  });

  it('writes max_output_tokens for the Responses API and nothing for embeddings', () => {
    const responses = { model: 'gpt-4o', input: 'hi', max_output_tokens: 4000 };
    const r = setup(limited({ path: '/v1/responses', body: responses })).ex;
    expect(r.requestHeaders({}, meta(), false)).to.deep.equal({ modeOverride: { requestBody: 'buffered' } });
    expect(r.requestBody(Buffer.from(JSON.stringify(responses)), true)!.body!.toString()).to.equal(
      JSON.stringify({ ...responses, max_output_tokens: 78 }),
    );
    const embeddings = setup(limited({ path: '/v1/embeddings', body: { input: 'x' } })).ex;
    expect(embeddings.requestHeaders({}, meta(), false)).to.equal(undefined);
  });

  it('reads the limit from Envoy’s bytes when the Check could not parse the body', () => {
    const { ex } = setup(limited({ body: undefined }));
    expect(ex.requestHeaders({}, meta(), false)).to.deep.equal({ modeOverride: { requestBody: 'buffered' } });
    const action = ex.requestBody(Buffer.from('{"messages":[],"max_tokens":9999}'), true);
    expect(action?.body?.toString()).to.equal('{"messages":[],"max_tokens":78}');
  });

  it('fails closed: a partial body never goes upstream without the limit; a 500 and a release instead', async () => {
    const body = { model: 'gpt-4o-mini', messages: [] };
    const { ex, ledger } = setup(limited({ body }));
    ex.requestHeaders({}, meta(), false);
    const action = ex.requestBody(Buffer.from('{"model":"gpt-4o-mini",'), false);
    expect(action).to.have.property('refuse');
    const { denial, details } = action!.refuse!;
    expect(details).to.equal('tollgate_output_limit_not_written');
    expect(denial).to.include({
      status: 500,
      reason: 'internal_error',
      type: 'server_error',
      code: 'internal_error',
      message: 'Tollgate could not limit the output of this request to its token budget, so it was not sent.',
    });
    await new Promise((r) => setImmediate(r));
    expect(ledger.calls.map((c) => c.kind === 'release' && c.reason)).to.deep.equal(['not_forwarded']);
    // Envoy closes the stream next: nothing more is charged.
    await ex.end('aborted');
    expect(ledger.calls).to.have.length(1);
  });

  it('fails closed on a body that cannot carry the limit (not a JSON object)', () => {
    const { ex, errors } = setup(limited({ body: undefined }));
    ex.requestHeaders({}, meta(), false);
    const action = ex.requestBody(Buffer.from('model=gpt-4o&n=5'), true);
    expect(action?.refuse?.denial.status).to.equal(500);
    expect(errors).to.have.length(1);
  });

  it('lets a request without a body pass: it asks the model for nothing', () => {
    const { ex } = setup(limited({ body: undefined }));
    expect(ex.requestHeaders({}, meta(), true)).to.equal(undefined);
  });

  it('without a limit to write, a partial body still passes unchanged (the injection is skipped)', () => {
    const body = { model: 'gpt-4o-mini', stream: true };
    const { ex } = setup(admission({ body }));
    ex.requestHeaders({}, meta(), false);
    expect(ex.requestBody(Buffer.from('{"model":'), false)).to.equal(undefined);
  });
});

describe('response/responseBodyMode', () => {
  it('streams SSE, buffers small sized JSON, streams large or unsized JSON', () => {
    expect(responseBodyMode(true, '10')).to.equal('streamed');
    expect(responseBodyMode(false, '0')).to.equal('buffered');
    expect(responseBodyMode(false, String(MAX_BUFFERED_RESPONSE_BYTES))).to.equal('buffered');
    expect(responseBodyMode(false, String(MAX_BUFFERED_RESPONSE_BYTES + 1))).to.equal('streamed');
    expect(responseBodyMode(false, undefined)).to.equal('streamed');
    expect(responseBodyMode(false, '12, 12')).to.equal('streamed');
  });
});
