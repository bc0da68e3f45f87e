import { expect } from 'chai';
import fc from 'fast-check';
import {
  backgroundOutput,
  estimatePrompt,
  estimateReservation,
  quickPromptEstimate,
} from '../../../src/metering/estimate.js';
import { countTokens } from '../../../src/metering/tokenizer.js';

const CHAT = '/v1/chat/completions';

/** The example conversation of OpenAI's cookbook "How to count tokens with tiktoken". */
const COOKBOOK_MESSAGES: Array<Record<string, string>> = [
  {
    role: 'system',
    content:
      'You are a helpful, pattern-following assistant that translates corporate jargon into plain English.',
  },
  {
    role: 'system',
    name: 'example_user',
    content: 'New synergies will help drive top-line growth.',
  },
  {
    role: 'system',
    name: 'example_assistant',
    content: 'Things working well together will increase revenue.',
  },
  {
    role: 'system',
    name: 'example_user',
    content:
      "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage.",
  },
  {
    role: 'system',
    name: 'example_assistant',
    content: "Let's talk later when we're less busy about how to do better.",
  },
  {
    role: 'user',
    content:
      "This late pivot means we don't have time to boil the ocean for the client deliverable.",
  },
];

/** The cookbook rule written out independently: 3 per message, its strings, +1 per name, +3. */
function cookbookRule(messages: Array<Record<string, string>>, model: string): number {
  let n = 3;
  for (const m of messages) {
    n += 3;
    for (const [key, value] of Object.entries(m))
      n += countTokens(value, model) + (key === 'name' ? 1 : 0);
  }
  return n;
}

describe('metering/estimate', () => {
  it('applies the cookbook rule to chat messages', () => {
    for (const model of ['gpt-4', 'gpt-4o']) {
      expect(estimatePrompt(CHAT, { model, messages: COOKBOOK_MESSAGES }, model), model).to.equal(
        cookbookRule(COOKBOOK_MESSAGES, model),
      );
    }
    // The cookbook prints 129 for gpt-3.5-turbo / gpt-4 — the count the API reported.
    expect(estimatePrompt(CHAT, { messages: COOKBOOK_MESSAGES }, 'gpt-4-0613')).to.equal(129);
  });

  it('counts text parts of content arrays and a margin per image', () => {
    const model = 'gpt-4o';
    const text = 'What is in this picture?';
    const body = {
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text },
            { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA', detail: 'high' } },
            { type: 'image_url', image_url: { url: 'https://x/y.png', detail: 'low' } },
          ],
        },
      ],
    };
    const base = 3 + 3 + countTokens('user', model) + countTokens(text, model);
    expect(estimatePrompt(CHAT, body, model)).to.equal(base + 765 + 85);
  });

  it('adds tool definitions, response_format and assistant tool calls as JSON text', () => {
    const model = 'gpt-4o';
    const tools = [
      {
        type: 'function',
        function: {
          name: 'get_weather',
          parameters: { type: 'object', properties: { city: { type: 'string' } } },
        },
      },
    ];
    const responseFormat = {
      type: 'json_schema',
      json_schema: { name: 'x', schema: { type: 'object' } },
    };
    const messages = [{ role: 'user', content: 'hi' }];
    const plain = estimatePrompt(CHAT, { messages }, model);
    const withTools = estimatePrompt(
      CHAT,
      { messages, tools, response_format: responseFormat },
      model,
    );
    expect(withTools - plain).to.equal(
      countTokens(JSON.stringify(tools), model) +
        countTokens(JSON.stringify(responseFormat), model),
    );

    const call = {
      role: 'assistant',
      content: null,
      tool_calls: [
        {
          id: 'c1',
          type: 'function',
          function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
        },
      ],
    };
    const withCall = estimatePrompt(CHAT, { messages: [...messages, call] }, model);
    expect(withCall - plain).to.equal(
      3 +
        countTokens('assistant', model) +
        countTokens('get_weather', model) +
        countTokens('{"city":"Paris"}', model),
    );
  });

  it('counts completions prompts: a string, strings, token ids', () => {
    const model = 'gpt-3.5-turbo-instruct';
    const path = '/v1/completions';
    expect(estimatePrompt(path, { prompt: 'Say this is a test' }, model)).to.equal(
      countTokens('Say this is a test', model),
    );
    expect(estimatePrompt(path, { prompt: ['a b', 'c d e'] }, model)).to.equal(
      countTokens('a b', model) + countTokens('c d e', model),
    );
    expect(estimatePrompt(path, { prompt: [1, 2, 3] }, model)).to.equal(3);
    expect(estimatePrompt(path, { prompt: [[1, 2], [3]] }, model)).to.equal(3);
  });

  it('sums embeddings inputs without overhead', () => {
    const model = 'text-embedding-3-small';
    const path = '/v1/embeddings';
    expect(estimatePrompt(path, { input: 'The food was delicious' }, model)).to.equal(
      countTokens('The food was delicious', model),
    );
    expect(estimatePrompt(path, { input: ['one', 'two three'] }, model)).to.equal(
      countTokens('one', model) + countTokens('two three', model),
    );
    expect(estimatePrompt(path, { input: [[10, 20, 30], [40]] }, model)).to.equal(4);
  });

  it('counts Responses API input and instructions', () => {
    const model = 'gpt-4o';
    const path = '/v1/responses';
    const asString = estimatePrompt(
      path,
      { input: 'Tell me a joke', instructions: 'Be brief.' },
      model,
    );
    const expected =
      3 +
      (3 + countTokens('user', model) + countTokens('Tell me a joke', model)) +
      (3 + countTokens('system', model) + countTokens('Be brief.', model));
    expect(asString).to.equal(expected);
    const items = estimatePrompt(
      path,
      { input: [{ role: 'user', content: [{ type: 'input_text', text: 'Tell me a joke' }] }] },
      model,
    );
    expect(items).to.equal(
      3 + 3 + countTokens('user', model) + countTokens('Tell me a joke', model),
    );
  });

  it('estimates at admission without a tokenizer: three UTF-8 bytes a token per field', () => {
    // 3 priming + per message 3 + ceil(bytes / 3) per string field + 1 for a name.
    const messages = [
      { role: 'system', content: 'Be brief.' }, // 6 + 9 bytes
      { role: 'user', name: 'ann', content: '東京は今日も晴れです' }, // 4 + 3 + 30 bytes
    ];
    const expected = 3 + (3 + 2 + 3) + (3 + 2 + 1 + 1 + 10);
    expect(quickPromptEstimate(CHAT, { messages })).to.equal(expected);
    expect(estimateReservation(CHAT, { messages, max_tokens: 5 }, 'gpt-4o', 1000).prompt).to.equal(
      expected,
    );
    // The same walk as the exact count: images, token ids, Responses input, tools.
    const image = { type: 'image_url', image_url: { url: 'https://x/y.png', detail: 'low' } };
    expect(quickPromptEstimate(CHAT, { messages: [{ role: 'user', content: [image] }] })).to.equal(
      3 + 3 + 2 + 85,
    );
    expect(quickPromptEstimate('/v1/embeddings', { input: [[1, 2, 3], 'abcdef'] })).to.equal(3 + 2);
    expect(quickPromptEstimate('/v1/responses', { input: 'abc', instructions: 'abcd' })).to.equal(
      3 + (3 + 2 + 1) + (3 + 2 + 2),
    );
    expect(quickPromptEstimate('/v1/models', { input: 'abc' })).to.equal(0);
  });

  it('errs high against the real tokenizer on English, stays close on CJK', () => {
    for (const model of ['gpt-4', 'gpt-4o']) {
      const body = { messages: COOKBOOK_MESSAGES };
      const exact = estimatePrompt(CHAT, body, model);
      // Short fields round up one token each: 1.6× here, about 1.35× on longer prose.
      expect(quickPromptEstimate(CHAT, body), model).to.be.within(exact, exact * 1.7);
      const cjk = {
        messages: [
          { role: 'user', content: '東京は今日も晴れです。明日は雨が降るでしょう。'.repeat(20) },
        ],
      };
      const exactCjk = estimatePrompt(CHAT, cjk, model);
      expect(quickPromptEstimate(CHAT, cjk), model).to.be.within(exactCjk * 0.8, exactCjk * 1.8);
    }
  });

  it('reserves the output cap times n (and best_of), or the default', () => {
    const messages = [{ role: 'user', content: 'hi' }];
    const prompt = quickPromptEstimate(CHAT, { messages });
    expect(estimateReservation(CHAT, { messages }, 'gpt-4o', 1000)).to.deep.equal({
      prompt,
      maxOutput: 1000,
      total: prompt + 1000,
      generations: 1,
      outputLimit: 1000,
      limitGiven: false,
    });
    expect(
      estimateReservation(CHAT, { messages, max_tokens: 50, n: 3 }, 'gpt-4o', 1000).maxOutput,
    ).to.equal(150);
    expect(
      estimateReservation(
        CHAT,
        { messages, max_completion_tokens: 70, max_tokens: 50 },
        'gpt-4o',
        1000,
      ).maxOutput,
    ).to.equal(70);
    expect(
      estimateReservation(
        '/v1/completions',
        { prompt: 'x', max_tokens: 20, n: 2, best_of: 5 },
        'gpt-3.5-turbo-instruct',
        1000,
      ).maxOutput,
    ).to.equal(100);
    expect(
      estimateReservation('/v1/responses', { input: 'x', max_output_tokens: 300 }, 'gpt-4o', 1000)
        .maxOutput,
    ).to.equal(300);
    expect(
      estimateReservation('/v1/embeddings', { input: 'x' }, 'text-embedding-3-small', 1000)
        .maxOutput,
    ).to.equal(0);
    expect(estimateReservation('/v1/models', {}, 'gpt-4o', 1000)).to.deep.equal({
      prompt: 0,
      maxOutput: 0,
      total: 0,
      generations: 0,
      outputLimit: 0,
      limitGiven: false,
    });
    // Garbage caps fall back to the default; an absurd n is capped at the API's 128.
    expect(
      estimateReservation(CHAT, { messages, max_tokens: 'lots', n: -2 }, 'gpt-4o', 1000).maxOutput,
    ).to.equal(1000);
    expect(
      estimateReservation(CHAT, { messages, max_tokens: 10, n: 1e9 }, 'gpt-4o', 1000).maxOutput,
    ).to.equal(1280);
  });

  it('tells the generations and the per-generation limit that make up the output', () => {
    const messages = [{ role: 'user', content: 'hi' }];
    const pick = (path: string, body: unknown) => {
      const r = estimateReservation(path, body, 'gpt-4o', 1000);
      return [r.generations, r.outputLimit, r.limitGiven, r.maxOutput];
    };
    expect(pick(CHAT, { messages, n: 5 })).to.deep.equal([5, 1000, false, 5000]);
    expect(pick(CHAT, { messages, n: 5, max_tokens: 40 })).to.deep.equal([5, 40, true, 200]);
    // Both chat limits given: the larger is the worst case (providers differ in which wins).
    expect(pick(CHAT, { messages, max_completion_tokens: 30, max_tokens: 60 })).to.deep.equal([1, 60, true, 60]);
    expect(pick(CHAT, { messages, max_tokens: null })).to.deep.equal([1, 1000, false, 1000]);
    // Completions without max_tokens: the API's own default of 16, not the configured one.
    expect(pick('/v1/completions', { prompt: 'x', n: 2, best_of: 3 })).to.deep.equal([3, 16, false, 48]);
    expect(pick('/v1/completions', { prompt: 'x', n: 4, best_of: 3, max_tokens: 7 })).to.deep.equal([4, 7, true, 28]);
    expect(pick('/v1/responses', { input: 'x' })).to.deep.equal([1, 1000, false, 1000]);
    expect(pick('/v1/responses', { input: 'x', max_output_tokens: 0, n: 9 })).to.deep.equal([1, 0, true, 0]);
    expect(pick('/v1/embeddings', { input: 'x', max_tokens: 5 })).to.deep.equal([0, 0, false, 0]);
  });

  it('bounds the time spent on a huge prompt and still estimates it closely', () => {
    const content = 'All work and no play makes Jack a dull boy. '.repeat(20_000); // 880 KB
    let started = performance.now();
    const exact = countTokens(content, 'gpt-4o');
    const fullMs = performance.now() - started;
    started = performance.now();
    const estimate = estimatePrompt(CHAT, { messages: [{ role: 'user', content }] }, 'gpt-4o');
    // Only the first 32 K characters are tokenized: ~1/27 of the work, asserted loosely.
    expect(performance.now() - started).to.be.below(fullMs / 3);
    expect(estimate).to.be.within(exact * 0.95, exact * 1.05);
  });

  it('tells the output a background Responses request may produce out of sight: the limit it is sent', () => {
    const body = { model: 'gpt-4o-mini', input: 'hi', background: true, max_output_tokens: 300 };
    expect(backgroundOutput('/v1/responses', body, undefined)).to.equal(300);
    expect(backgroundOutput('/v1/responses', body, 120), 'the limit ext_proc writes').to.equal(120);
    expect(backgroundOutput('/v1/responses', { ...body, max_output_tokens: undefined }, undefined), 'unbounded: no budget applies').to.equal(undefined);
    expect(backgroundOutput('/v1/responses', { ...body, background: false }, 120)).to.equal(undefined);
    expect(backgroundOutput('/v1/chat/completions', body, 120)).to.equal(undefined);
  });

  it('never throws on garbage bodies', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(CHAT, '/v1/completions', '/v1/embeddings', '/v1/responses', '/x'),
        fc.anything(),
        fc.anything(),
        (path, body, messages) => {
          const a = estimatePrompt(path, body, 'gpt-4o');
          const b = estimateReservation(
            path,
            { messages, input: messages, prompt: messages, n: body },
            'gpt-4o',
            10,
          );
          expect(a).to.be.at.least(0);
          expect(b.total).to.equal(b.prompt + b.maxOutput);
        },
      ),
      { numRuns: 300 },
    );
  });
});
