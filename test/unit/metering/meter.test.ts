import { expect } from 'chai';
import fc from 'fast-check';
import zlib from 'node:zlib';
import { ResponseMeter, type MeterOptions } from '../../../src/metering/meter.js';
import { countTokens } from '../../../src/metering/tokenizer.js';
import { cutsArb, fixture, splitAt } from './helpers.js';

const MODEL = 'gpt-4o-mini';
const chatOpts = (over: Partial<MeterOptions> = {}): MeterOptions => ({
  endpoint: 'chat',
  model: MODEL,
  stream: true,
  clientWantsUsage: true,
  promptEstimate: 20,
  ...over,
});

/** Feeds chunks (the last with endOfStream) and returns what the client would receive. */
async function run(meter: ResponseMeter, chunks: readonly Buffer[]): Promise<Buffer> {
  const out: Buffer[] = [];
  for (const [i, chunk] of chunks.entries()) {
    const forwarded = await meter.push(chunk, i === chunks.length - 1);
    out.push(forwarded ?? chunk);
  }
  return Buffer.concat(out);
}

/** The fixture without its usage-only event, located by text rather than by our parser. */
function withoutUsageEvent(buf: Buffer, eol = '\n'): Buffer {
  const text = buf.toString('utf8');
  const marker = text.indexOf('"choices":[]');
  const start = text.lastIndexOf('data: ', marker);
  expect(text.slice(start - 2 * eol.length, start)).to.equal(eol + eol);
  const end = text.indexOf(eol + eol, marker) + 2 * eol.length;
  return Buffer.from(text.slice(0, start) + text.slice(end), 'utf8');
}

const STRIP_CASES = [
  {
    name: 'chat-with-usage.sse',
    endpoint: 'chat',
    eol: '\n',
    usage: { inputTokens: 19, outputTokens: 13, totalTokens: 32 },
  },
  {
    name: 'chat-crlf.sse',
    endpoint: 'chat',
    eol: '\r\n',
    usage: { inputTokens: 19, outputTokens: 13, totalTokens: 32 },
  },
  {
    name: 'chat-comments.sse',
    endpoint: 'chat',
    eol: '\n',
    usage: { inputTokens: 19, outputTokens: 13, totalTokens: 32 },
  },
  {
    name: 'chat-tool-calls.sse',
    endpoint: 'chat',
    eol: '\n',
    usage: { inputTokens: 82, outputTokens: 47, totalTokens: 129 },
  },
  {
    name: 'completions-with-usage.sse',
    endpoint: 'completions',
    eol: '\n',
    usage: { inputTokens: 5, outputTokens: 11, totalTokens: 16 },
  },
] as const;

describe('metering/meter', () => {
  it('property: forwards every byte unchanged when the client asked for usage, for any split', async () => {
    for (const c of STRIP_CASES) {
      const buf = fixture(c.name);
      await fc.assert(
        fc.asyncProperty(cutsArb(buf.length), async (cuts) => {
          const meter = new ResponseMeter(chatOpts({ endpoint: c.endpoint }));
          const chunks = splitAt(buf, cuts);
          for (const [i, chunk] of chunks.entries()) {
            expect(await meter.push(chunk, i === chunks.length - 1)).to.equal(undefined);
          }
          expect(meter.finish('complete')).to.deep.include({ ...c.usage, source: 'provider' });
        }),
        { numRuns: 40 },
      );
    }
  });

  it('property: removes exactly the usage event when the client did not ask, for any split', async () => {
    for (const c of STRIP_CASES) {
      const buf = fixture(c.name);
      const expected = withoutUsageEvent(buf, c.eol);
      expect(expected.length).to.be.lessThan(buf.length);
      await fc.assert(
        fc.asyncProperty(cutsArb(buf.length), async (cuts) => {
          const meter = new ResponseMeter(
            chatOpts({ endpoint: c.endpoint, clientWantsUsage: false }),
          );
          const out = await run(meter, splitAt(buf, cuts));
          expect(out.toString('utf8')).to.equal(expected.toString('utf8'));
          expect(out.includes('data: [DONE]')).to.equal(true);
          expect(meter.finish('complete')).to.deep.include({ ...c.usage, source: 'provider' });
        }),
        { numRuns: 40 },
      );
    }
  });

  it('forwards chunks that align with events untouched (undefined) even while stripping', async () => {
    const meter = new ResponseMeter(chatOpts({ clientWantsUsage: false }));
    const event = Buffer.from(
      'data: {"choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}\n\n',
    );
    expect(await meter.push(event, false)).to.equal(undefined);
    const partial = await meter.push(event.subarray(0, 10), false);
    expect(partial?.length).to.equal(0); // held back until the event is complete
    expect((await meter.push(event.subarray(10), false))?.equals(event)).to.equal(true);
  });

  it('charges an estimate after an abort: prompt estimate + the streamed text', async () => {
    const buf = fixture('chat-without-usage.sse');
    const events = buf
      .toString('utf8')
      .split('\n\n')
      .map((e) => Buffer.from(`${e}\n\n`));
    const meter = new ResponseMeter(chatOpts({ clientWantsUsage: false }));
    await meter.push(Buffer.concat(events.slice(0, 2)), false);
    await meter.push(events[2] ?? Buffer.alloc(0), false);
    const usage = meter.finish('aborted');
    expect(usage.source).to.equal('estimated');
    expect(usage.inputTokens).to.equal(20);
    expect(usage.outputTokens).to.equal(countTokens('Hello', MODEL) + countTokens('!', MODEL));
    expect(usage.totalTokens).to.equal(usage.inputTokens + usage.outputTokens);
    expect(meter.finish('complete')).to.equal(usage); // idempotent
  });

  it('counts the prompt (countPrompt) only when no usage arrived, falling back on failure', async () => {
    let counted = 0;
    const countPrompt = (): number => {
      counted += 1;
      return 33;
    };
    const withUsage = new ResponseMeter(chatOpts({ countPrompt }));
    await run(withUsage, [fixture('chat-with-usage.sse')]);
    expect(withUsage.finish('complete').source).to.equal('provider');
    expect(counted).to.equal(0); // a response with usage never pays for a count

    const aborted = new ResponseMeter(chatOpts({ countPrompt }));
    await aborted.push(fixture('chat-without-usage.sse').subarray(0, 10), false);
    expect(aborted.finish('aborted')).to.include({ inputTokens: 33, source: 'estimated' });
    expect(counted).to.equal(1);

    const failing = new ResponseMeter(
      chatOpts({
        countPrompt: () => {
          throw new Error('no tokenizer');
        },
      }),
    );
    expect(failing.finish('aborted')).to.include({ inputTokens: 20, source: 'estimated' });
  });

  it('charges a background request without usage at least its whole output limit', async () => {
    const queued = Buffer.from(JSON.stringify({ id: 'resp_1', object: 'response', status: 'queued', background: true, output: [], usage: null }));
    const meter = new ResponseMeter(chatOpts({ endpoint: 'responses', stream: false, backgroundOutput: 300 }));
    await run(meter, [queued]);
    expect(meter.finish('complete')).to.deep.equal({ inputTokens: 20, outputTokens: 300, totalTokens: 320, source: 'estimated' });
    // Usage that does arrive (the client stayed for the whole stream) is charged as it is.
    const streamed = new ResponseMeter(chatOpts({ backgroundOutput: 300 }));
    await run(streamed, [fixture('chat-with-usage.sse')]);
    expect(streamed.finish('complete').source).to.equal('provider');
  });

  it('estimates a complete stream that carried no usage from all of its deltas', async () => {
    const meter = new ResponseMeter(chatOpts());
    await run(meter, [fixture('chat-without-usage.sse')]);
    const usage = meter.finish('complete');
    const text = 'Hello! How can I help you today? ¿Qué tal 😀?';
    expect(usage).to.deep.equal({
      inputTokens: 20,
      outputTokens: countTokens(text, MODEL),
      totalTokens: 20 + countTokens(text, MODEL),
      source: 'estimated',
    });
  });

  it('counts tool-call names and arguments per call and content per choice', async () => {
    const buf = fixture('chat-tool-calls.sse');
    const cut = buf.indexOf('"choices":[]');
    const meter = new ResponseMeter(chatOpts());
    await meter.push(buf.subarray(0, buf.lastIndexOf('data: ', cut)), false);
    const expected =
      countTokens('get_weather', MODEL) +
      countTokens('{"location":"Paris, France","unit":"celsius"}', MODEL) +
      countTokens('get_time', MODEL) +
      countTokens('{"city":"Paris"}', MODEL) +
      countTokens('I will check the weather in Paris for you.', MODEL);
    expect(meter.finish('aborted')).to.deep.include({
      outputTokens: expected,
      source: 'estimated',
    });
  });

  it('keeps provider usage that passed before an abort', async () => {
    const buf = fixture('chat-with-usage.sse');
    const meter = new ResponseMeter(chatOpts());
    await meter.push(buf.subarray(0, buf.indexOf('data: [DONE]')), false);
    expect(meter.finish('aborted')).to.deep.include({
      inputTokens: 19,
      outputTokens: 13,
      source: 'provider',
    });
  });

  it('reads the Responses API stream: usage from response.completed, else output_text deltas', async () => {
    const buf = fixture('responses.sse');
    const full = new ResponseMeter({
      endpoint: 'responses',
      model: MODEL,
      stream: true,
      clientWantsUsage: true,
      promptEstimate: 9,
    });
    expect(await run(full, [buf])).to.deep.equal(buf);
    expect(full.finish('complete')).to.deep.include({
      inputTokens: 36,
      outputTokens: 7,
      totalTokens: 43,
      source: 'provider',
    });

    const aborted = new ResponseMeter({
      endpoint: 'responses',
      model: MODEL,
      stream: true,
      clientWantsUsage: true,
      promptEstimate: 9,
    });
    await aborted.push(buf.subarray(0, buf.indexOf('event: response.output_text.done')), false);
    const text = 'Tokens are never lost behind Tollgate.';
    expect(aborted.finish('aborted')).to.deep.equal({
      inputTokens: 9,
      outputTokens: countTokens(text, MODEL),
      totalTokens: 9 + countTokens(text, MODEL),
      source: 'estimated',
    });
  });

  it('parses a buffered JSON body, and estimates from its text when usage is missing', async () => {
    const body = {
      object: 'chat.completion',
      choices: [{ index: 0, message: { role: 'assistant', content: 'Four.' } }],
      usage: { prompt_tokens: 14, completion_tokens: 2, total_tokens: 16 },
    };
    const meter = new ResponseMeter(chatOpts({ stream: false }));
    expect(await meter.push(Buffer.from(JSON.stringify(body)), true)).to.equal(undefined);
    expect(meter.finish('complete')).to.deep.equal({
      inputTokens: 14,
      outputTokens: 2,
      totalTokens: 16,
      source: 'provider',
    });

    const noUsage: Record<string, unknown> = { ...body };
    delete noUsage['usage'];
    const estimated = new ResponseMeter(chatOpts({ stream: false }));
    await estimated.push(Buffer.from(JSON.stringify(noUsage)), true);
    expect(estimated.finish('complete')).to.deep.include({
      outputTokens: countTokens('Four.', MODEL),
      source: 'estimated',
    });

    const garbage = new ResponseMeter(chatOpts({ stream: false }));
    await garbage.push(Buffer.from('<html>bad gateway'), true);
    expect(garbage.finish('complete')).to.deep.equal({
      inputTokens: 20,
      outputTokens: 0,
      totalTokens: 20,
      source: 'estimated',
    });
  });

  it('property: a gzip, deflate or br body split anywhere gives the same usage, untouched', async () => {
    const sse = fixture('chat-with-usage.sse');
    const json = Buffer.from(
      JSON.stringify({
        object: 'response',
        usage: { input_tokens: 3, output_tokens: 4, total_tokens: 7 },
      }),
    );
    const encodings = [
      ['gzip', zlib.gzipSync],
      ['deflate', zlib.deflateSync],
      ['deflate', zlib.deflateRawSync],
      ['br', zlib.brotliCompressSync],
    ] as const;
    for (const [encoding, compress] of encodings) {
      for (const [body, stream, total] of [
        [sse, true, 32],
        [json, false, 7],
      ] as const) {
        const compressed = compress(body);
        await fc.assert(
          fc.asyncProperty(cutsArb(compressed.length, 20), async (cuts) => {
            const meter = new ResponseMeter(
              chatOpts({
                stream,
                clientWantsUsage: false,
                contentEncoding: encoding,
                endpoint: stream ? 'chat' : 'responses',
              }),
            );
            const chunks = splitAt(compressed, cuts);
            for (const [i, chunk] of chunks.entries())
              expect(await meter.push(chunk, i === chunks.length - 1)).to.equal(undefined);
            expect(meter.finish('complete')).to.deep.include({
              totalTokens: total,
              source: 'provider',
            });
          }),
          { numRuns: 15 },
        );
      }
    }
  });

  it('estimates when a compressed body is corrupt or uses an unknown encoding', async () => {
    const corrupt = new ResponseMeter(chatOpts({ contentEncoding: 'gzip' }));
    expect(await corrupt.push(Buffer.from('definitely not gzip'), true)).to.equal(undefined);
    expect(corrupt.finish('complete')).to.deep.include({ inputTokens: 20, source: 'estimated' });

    const unknown = new ResponseMeter(chatOpts({ contentEncoding: 'zstd' }));
    expect(await unknown.push(Buffer.from([1, 2, 3]), true)).to.equal(undefined);
    expect(unknown.finish('complete')).to.deep.equal({
      inputTokens: 20,
      outputTokens: 0,
      totalTokens: 20,
      source: 'estimated',
    });
  });
});
