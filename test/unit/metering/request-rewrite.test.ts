import { expect } from 'chai';
import fc from 'fast-check';
import {
  injectsUsage,
  rewriteRequest,
  spliceMember,
} from '../../../src/metering/request-rewrite.js';

const CHAT = '/v1/chat/completions';
const rewrite = (path: string, body: unknown, raw?: string) =>
  rewriteRequest(path, body, raw ?? JSON.stringify(body));
const parsed = (b: Buffer | undefined): unknown => (b ? JSON.parse(b.toString('utf8')) : undefined);

describe('metering/request-rewrite', () => {
  it('injects include_usage into a streaming chat request and remembers the client did not ask', () => {
    const body = { model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'hi' }] };
    const r = rewrite(CHAT, body);
    expect(r).to.include({ stream: true, clientWantsUsage: false, endpoint: 'chat' });
    expect(parsed(r.body)).to.deep.equal({ ...body, stream_options: { include_usage: true } });
  });

  it('keeps the other stream_options keys and overrides include_usage: false', () => {
    const body = {
      model: 'gpt-4o',
      stream: true,
      stream_options: { include_obfuscation: false, include_usage: false },
      messages: [],
    };
    const r = rewrite(CHAT, body);
    expect(r.clientWantsUsage).to.equal(false);
    expect(parsed(r.body)).to.deep.equal({
      ...body,
      stream_options: { include_obfuscation: false, include_usage: true },
    });
  });

  it('leaves a request alone when the client already asked for usage', () => {
    const r = rewrite(CHAT, {
      stream: true,
      stream_options: { include_usage: true },
      messages: [],
    });
    expect(r).to.deep.equal({ stream: true, clientWantsUsage: true, endpoint: 'chat' });
  });

  it('never injects into non-streaming requests, embeddings or the Responses API', () => {
    expect(rewrite(CHAT, { messages: [] })).to.deep.equal({
      stream: false,
      clientWantsUsage: true,
      endpoint: 'chat',
    });
    expect(rewrite(CHAT, { stream: false, messages: [] }).body).to.equal(undefined);
    expect(rewrite(CHAT, { stream: 'true', messages: [] }).body).to.equal(undefined);
    expect(rewrite('/v1/embeddings', { input: 'x' }).body).to.equal(undefined);
    expect(rewrite('/v1/responses', { stream: true, input: 'x' })).to.deep.equal({
      stream: true,
      clientWantsUsage: true,
      endpoint: 'responses',
    });
  });

  it('handles legacy completions streams too', () => {
    const r = rewrite('/v1/completions', {
      model: 'gpt-3.5-turbo-instruct',
      prompt: 'x',
      stream: true,
    });
    expect(r.clientWantsUsage).to.equal(false);
    expect(parsed(r.body)).to.deep.include({ stream_options: { include_usage: true } });
  });

  it('does not repair an invalid stream_options (the upstream refuses it anyway)', () => {
    expect(rewrite(CHAT, { stream: true, stream_options: 'yes', messages: [] }).body).to.equal(
      undefined,
    );
    expect(
      parsed(rewrite(CHAT, { stream: true, stream_options: null, messages: [] }).body),
    ).to.deep.include({ stream_options: { include_usage: true } });
  });

  it('splices into the raw bytes, preserving big numbers, spacing and key order', () => {
    const raw =
      '{ "model": "gpt-4o",\n  "seed": 12345678901234567890, "stream": true, "temperature": 1.0, "messages": [{"role":"user","content":"{\\"}"}] }\n';
    const r = rewriteRequest(CHAT, JSON.parse(raw), raw);
    expect(r.body?.toString()).to.equal(
      raw.replace(' }\n', ',"stream_options":{"include_usage":true} }\n'),
    );

    const withOptions = '{"stream":true,"stream_options":{"include_obfuscation":false},"n":1e2}';
    expect(
      rewriteRequest(CHAT, JSON.parse(withOptions), Buffer.from(withOptions)).body?.toString(),
    ).to.equal(
      '{"stream":true,"stream_options":{"include_obfuscation":false,"include_usage":true},"n":1e2}',
    );
  });

  it('replaces the last of duplicate keys, as JSON.parse reads it', () => {
    expect(spliceMember('{"a":1,"a":{"x":[1,"}"]}}', 'a', '2')?.toString()).to.equal(
      '{"a":1,"a":2}',
    );
    expect(spliceMember('{}', 'a', '2')?.toString()).to.equal('{"a":2}');
    expect(spliceMember('[1]', 'a', '2')).to.equal(undefined);
    expect(spliceMember('{"a":1} trailing', 'a', '2')).to.equal(undefined);
  });

  it('property: the spliced body always parses to the re-serialized one', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue()), fc.boolean(), (extra, pretty) => {
        const body = { ...extra, stream: true };
        const raw = pretty ? JSON.stringify(body, null, 2) : JSON.stringify(body);
        const r = rewriteRequest(CHAT, body, raw);
        const options = body['stream_options' as keyof typeof body] as unknown;
        const wanted =
          typeof options === 'object' &&
          options !== null &&
          !Array.isArray(options) &&
          (options as Record<string, unknown>)['include_usage'] === true;
        if (
          wanted ||
          (options !== undefined &&
            options !== null &&
            (typeof options !== 'object' || Array.isArray(options)))
        ) {
          expect(r.body).to.equal(undefined);
          return;
        }
        const viaStringify = rewriteRequest(CHAT, body);
        expect(parsed(r.body)).to.deep.equal(parsed(viaStringify.body));
      }),
      { numRuns: 300 },
    );
  });
  it('property: injectsUsage says exactly when rewriteRequest changes the body', () => {
    const options = fc.oneof(
      fc.constant(undefined),
      fc.constant(null),
      fc.constant('yes'),
      fc.record(
        { include_usage: fc.oneof(fc.boolean(), fc.constant('true')) },
        { requiredKeys: [] },
      ),
    );
    fc.assert(
      fc.property(
        fc.constantFrom(CHAT, '/v1/completions', '/v1/responses', '/v1/embeddings', '/v1/models'),
        fc.oneof(fc.boolean(), fc.constant('true'), fc.constant(undefined)),
        options,
        (path, stream, streamOptions) => {
          const body: Record<string, unknown> = { model: 'gpt-4o', messages: [] };
          if (stream !== undefined) body['stream'] = stream;
          if (streamOptions !== undefined) body['stream_options'] = streamOptions;
          expect(injectsUsage(path, body)).to.equal(rewrite(path, body).body !== undefined);
        },
      ),
      { numRuns: 300 },
    );
    expect(injectsUsage(CHAT, 'not an object')).to.equal(false);
  });
});
