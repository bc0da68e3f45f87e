import { expect } from 'chai';
import fc from 'fast-check';
import { SseParser } from '../../../src/metering/sse.js';
import { usageFromEvent, usageFromJson, type Usage } from '../../../src/metering/usage.js';
import { fixture } from './helpers.js';

function lastUsage(name: string): Usage | undefined {
  const parser = new SseParser();
  let usage: Usage | undefined;
  for (const event of [...parser.push(fixture(name)), ...parser.end()])
    usage = usageFromEvent(event) ?? usage;
  return usage;
}

describe('metering/usage', () => {
  it('reads a chat completion body with details as breakdowns, not extra tokens', () => {
    const usage = usageFromJson({
      object: 'chat.completion',
      choices: [{ index: 0, message: { role: 'assistant', content: 'hi' } }],
      usage: {
        prompt_tokens: 1200,
        completion_tokens: 300,
        total_tokens: 1500,
        prompt_tokens_details: { cached_tokens: 1024, audio_tokens: 0 },
        completion_tokens_details: { reasoning_tokens: 256, accepted_prediction_tokens: 0 },
      },
    });
    expect(usage).to.deep.equal({
      inputTokens: 1200,
      outputTokens: 300,
      totalTokens: 1500,
      cachedInputTokens: 1024,
      reasoningTokens: 256,
      source: 'provider',
    });
  });

  it('reads legacy completions and embeddings (no output tokens)', () => {
    expect(
      usageFromJson({
        object: 'text_completion',
        usage: { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12 },
      }),
    ).to.deep.equal({ inputTokens: 5, outputTokens: 7, totalTokens: 12, source: 'provider' });
    expect(
      usageFromJson({ object: 'list', data: [], usage: { prompt_tokens: 8, total_tokens: 8 } }),
    ).to.deep.equal({ inputTokens: 8, outputTokens: 0, totalTokens: 8, source: 'provider' });
  });

  it('reads a Responses API object and a terminal event body', () => {
    const usage = {
      input_tokens: 36,
      input_tokens_details: { cached_tokens: 10 },
      output_tokens: 70,
      output_tokens_details: { reasoning_tokens: 64 },
      total_tokens: 106,
    };
    const expected = {
      inputTokens: 36,
      outputTokens: 70,
      totalTokens: 106,
      cachedInputTokens: 10,
      reasoningTokens: 64,
      source: 'provider',
    };
    expect(usageFromJson({ object: 'response', status: 'completed', usage })).to.deep.equal(
      expected,
    );
    expect(usageFromJson({ type: 'response.incomplete', response: { usage } })).to.deep.equal(
      expected,
    );
  });

  it('reads the usage chunk of chat and completions streams, and nothing from other chunks', () => {
    expect(lastUsage('chat-with-usage.sse')).to.deep.include({
      inputTokens: 19,
      outputTokens: 13,
      totalTokens: 32,
      source: 'provider',
    });
    expect(lastUsage('chat-tool-calls.sse')).to.deep.include({
      inputTokens: 82,
      outputTokens: 47,
      cachedInputTokens: 64,
    });
    expect(lastUsage('completions-with-usage.sse')).to.deep.equal({
      inputTokens: 5,
      outputTokens: 11,
      totalTokens: 16,
      source: 'provider',
    });
    expect(lastUsage('chat-without-usage.sse')).to.equal(undefined);
  });

  it('reads usage only from the Responses terminal events', () => {
    expect(lastUsage('responses.sse')).to.deep.equal({
      inputTokens: 36,
      outputTokens: 7,
      totalTokens: 43,
      cachedInputTokens: 0,
      reasoningTokens: 0,
      source: 'provider',
    });
    for (const type of ['response.completed', 'response.incomplete', 'response.failed']) {
      const data = JSON.stringify({
        type,
        response: { usage: { input_tokens: 3, output_tokens: 4, total_tokens: 7 } },
      });
      expect(
        usageFromEvent({ event: type, data, raw: Buffer.alloc(0) })?.totalTokens,
        type,
      ).to.equal(7);
      expect(
        usageFromEvent({ data, raw: Buffer.alloc(0) })?.totalTokens,
        `${type} without event:`,
      ).to.equal(7);
    }
    const created = JSON.stringify({
      type: 'response.created',
      response: { usage: { input_tokens: 3, output_tokens: 4 } },
    });
    expect(
      usageFromEvent({ event: 'response.created', data: created, raw: Buffer.alloc(0) }),
    ).to.equal(undefined);
  });

  it('never adds details on top, clamps impossible breakdowns and repairs a short total', () => {
    const u = usageFromJson({
      usage: {
        prompt_tokens: 10,
        completion_tokens: 5,
        total_tokens: 3,
        prompt_tokens_details: { cached_tokens: 99 },
      },
    });
    expect(u).to.deep.equal({
      inputTokens: 10,
      outputTokens: 5,
      totalTokens: 15,
      cachedInputTokens: 10,
      source: 'provider',
    });
  });

  it('returns undefined for garbage and never throws', () => {
    for (const body of [
      null,
      42,
      'usage',
      [],
      {},
      { usage: null },
      { usage: {} },
      { usage: { prompt_tokens: 'ten' } },
      { usage: { prompt_tokens: -1 } },
      { usage: { prompt_tokens: NaN } },
    ]) {
      expect(usageFromJson(body), JSON.stringify(body)).to.equal(undefined);
    }
    for (const data of [
      '',
      '[DONE]',
      '{',
      'null',
      '{"choices":[],"usage":null}',
      '{"type":"response.completed"}',
    ]) {
      expect(usageFromEvent({ data, raw: Buffer.alloc(0) }), data).to.equal(undefined);
    }
    fc.assert(
      fc.property(fc.anything(), fc.string(), (body, data) => {
        usageFromJson(body);
        usageFromJson({ usage: body });
        usageFromEvent({ data, raw: Buffer.alloc(0) });
        usageFromEvent({
          data: JSON.stringify({ choices: [], usage: body }) ?? '',
          raw: Buffer.alloc(0),
        });
      }),
      { numRuns: 500 },
    );
  });
});
