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
});
