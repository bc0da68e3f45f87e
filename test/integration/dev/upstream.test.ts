/**
 * The development upstream bills like a model: completion tokens never exceed the request's
 * own output limit, for every choice (`n`) or candidate (`best_of`), and what it reports is
 * recorded for ledger checks.
 */
import { expect } from 'chai';
import { DevUpstream } from '../../../src/dev/upstream.js';

describe('dev upstream: usage honours the request', () => {
  let upstream: DevUpstream;
  before(async () => {
    upstream = await DevUpstream.start();
  });
  after(async () => {
    await upstream?.close();
  });

  async function usage(path: string, body: Record<string, unknown>, completion?: number): Promise<Record<string, number>> {
    const res = await fetch(`${upstream.url}${path}`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-dev-prompt-tokens': '7',
        ...(completion !== undefined ? { 'x-dev-completion-tokens': String(completion) } : {}),
      },
      body: JSON.stringify(body),
    });
    expect(res.status).to.equal(200);
    if (body['stream'] === true) {
      const text = await res.text();
      const chunk = text.split('\n\n').find((e) => e.includes('"choices":[]'));
      return (JSON.parse((chunk ?? '').replace(/^data: /, '')) as { usage: Record<string, number> }).usage;
    }
    return ((await res.json()) as { usage: Record<string, number> }).usage;
  }

  it('reports min(control, the request’s limit) per choice, times n or best_of', async () => {
    const chat = '/v1/chat/completions';
    expect(await usage(chat, { messages: [] })).to.include({ completion_tokens: 12, total_tokens: 19 });
    expect(await usage(chat, { messages: [], n: 3 })).to.include({ completion_tokens: 36 });
    expect(await usage(chat, { messages: [], n: 3, max_completion_tokens: 5 }, 100)).to.include({ completion_tokens: 15 });
    expect(await usage(chat, { messages: [], max_tokens: 40 }, 100)).to.include({ completion_tokens: 40 });
    const streamed = await usage(chat, { messages: [], n: 2, max_tokens: 9, stream: true, stream_options: { include_usage: true } }, 100);
    expect(streamed).to.include({ prompt_tokens: 7, completion_tokens: 18 });
    expect(await usage('/v1/completions', { prompt: 'x', n: 2, best_of: 4, max_tokens: 3 }, 100)).to.include({ completion_tokens: 12 });
    const responses = await usage('/v1/responses', { input: 'x', max_output_tokens: 20 }, 100);
    expect(responses).to.include({ input_tokens: 7, output_tokens: 20, total_tokens: 27 });
    expect(upstream.reported.map((r) => r.totalTokens)).to.deep.equal([19, 43, 22, 47, 25, 19, 27]);
  });

  async function events(path: string, body: Record<string, unknown>): Promise<string[]> {
    const res = await fetch(`${upstream.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-dev-prompt-tokens': '7', 'x-dev-completion-tokens': '5' },
      body: JSON.stringify(body),
    });
    expect(res.headers.get('content-type')).to.equal('text/event-stream');
    return (await res.text()).split('\n\n').filter((e) => e !== '');
  }

  it('streams legacy completions and the Responses API in their own shapes', async () => {
    const before = upstream.reported.length;
    const plain = await events('/v1/completions', { prompt: 'x', stream: true });
    expect(plain.at(-1)).to.equal('data: [DONE]');
    expect(plain.some((e) => e.includes('"usage":{')), 'no usage unless asked').to.equal(false);
    expect(plain[1]).to.contain('"object":"text_completion"').and.contain('"text":"Hello ');
    const asked = await events('/v1/completions', { prompt: 'x', stream: true, stream_options: { include_usage: true } });
    expect(asked.at(-2)).to.contain('"choices":[]').and.contain('"total_tokens":12');
    const responses = await events('/v1/responses', { input: 'x', stream: true });
    expect(responses[0]).to.match(/^event: response\.created\n/);
    expect(responses.at(-1)).to.match(/^event: response\.completed\n/).and.contain('"total_tokens":12');
    expect(responses.some((e) => e === 'data: [DONE]')).to.equal(false);
    expect(upstream.reported.slice(before).map((r) => r.path)).to.deep.equal(['/v1/completions', '/v1/responses']);
  });

  it('answers a background Responses request queued, without usage', async () => {
    const before = upstream.reported.length;
    const res = await fetch(`${upstream.url}/v1/responses`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ input: 'x', background: true }),
    });
    expect(await res.json()).to.include({ status: 'queued', usage: null, background: true });
    expect(upstream.reported.length).to.equal(before);
  });
});
