import { expect } from 'chai';
import fc from 'fast-check';
import {
  hasOutputLimit,
  injectsUsage,
  RewriteError,
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

  describe('writing the output limit a budget admitted', () => {
    const limited = (path: string, raw: string, outputLimit: number) =>
      rewriteRequest(path, JSON.parse(raw), Buffer.from(raw), { outputLimit });
    const text = (r: { body?: Buffer }) => r.body?.toString('utf8');

    it('chat: adds max_completion_tokens when neither limit is given, splicing the bytes', () => {
      const raw = '{"model":"gpt-4o", "seed": 12345678901234567890,\n "messages":[],"n":5}';
      const r = limited(CHAT, raw, 78);
      expect(text(r)).to.equal(`${raw.slice(0, -1)},"max_completion_tokens":78}`);
      expect(r).to.include({ stream: false, clientWantsUsage: true, endpoint: 'chat' });
      // null means "no limit": the added field bounds it
      expect(text(limited(CHAT, '{"max_tokens":null}', 5))).to.equal(
        '{"max_tokens":null,"max_completion_tokens":5}',
      );
    });

    it('chat: lowers each given limit above the cap in place and adds none', () => {
      expect(text(limited(CHAT, '{"max_tokens": 4000, "n": 2}', 300))).to.equal(
        '{"max_tokens": 300, "n": 2}',
      );
      expect(text(limited(CHAT, '{"max_completion_tokens":900,"max_tokens":5000}', 300))).to.equal(
        '{"max_completion_tokens":300,"max_tokens":300}',
      );
      // a limit already within the cap stays; only the other is lowered
      expect(text(limited(CHAT, '{"max_completion_tokens":90,"max_tokens":5000}', 300))).to.equal(
        '{"max_completion_tokens":90,"max_tokens":300}',
      );
      expect(limited(CHAT, '{"max_completion_tokens":300}', 300).body).to.equal(undefined);
    });

    it('chat streams: injects include_usage and writes the limit in one body', () => {
      const raw = '{"model":"gpt-4o","stream":true,"messages":[]}';
      const r = limited(CHAT, raw, 64);
      expect(text(r)).to.equal(
        '{"model":"gpt-4o","stream":true,"messages":[],"stream_options":{"include_usage":true},"max_completion_tokens":64}',
      );
      expect(r.clientWantsUsage).to.equal(false);
    });

    it('completions: max_tokens; responses: max_output_tokens; embeddings: nothing', () => {
      expect(text(limited('/v1/completions', '{"prompt":"x","best_of":4}', 124))).to.equal(
        '{"prompt":"x","best_of":4,"max_tokens":124}',
      );
      expect(text(limited('/v1/completions', '{"prompt":"x","max_tokens":300}', 124))).to.equal(
        '{"prompt":"x","max_tokens":124}',
      );
      expect(text(limited('/v1/responses', '{"input":"x","max_output_tokens":4000}', 291))).to.equal(
        '{"input":"x","max_output_tokens":291}',
      );
      expect(text(limited('/v1/responses', '{"input":"x","stream":true}', 100))).to.equal(
        '{"input":"x","stream":true,"max_output_tokens":100}',
      );
      expect(limited('/v1/embeddings', '{"input":"x"}', 10).body).to.equal(undefined);
      expect(hasOutputLimit('/v1/embeddings')).to.equal(false);
      expect(hasOutputLimit('/v1/models')).to.equal(false);
      // Only the catalogue's metered paths: an Azure deployment path is an unknown endpoint.
      expect(hasOutputLimit('/openai/deployments/x/chat/completions')).to.equal(false);
    });

    it('edits bytes, never decoding what it does not read, and refuses a body that is not an object', () => {
      const body = { messages: [], max_tokens: 900 };
      // Every byte outside the edit stays, even one that is not UTF-8 (the Check refuses those).
      const odd = Buffer.concat([Buffer.from('{"messages":[],"max_tokens":900,"x":"'), Buffer.from([0xff]), Buffer.from('"}')]);
      const r = rewriteRequest(CHAT, body, odd, { outputLimit: 50 });
      expect(r.body).to.deep.equal(Buffer.concat([Buffer.from('{"messages":[],"max_tokens":50,"x":"'), Buffer.from([0xff]), Buffer.from('"}')]));
      // The bytes decide, not a parsed copy that could differ from them.
      expect(parsed(rewriteRequest(CHAT, { max_tokens: 1 }, '{"max_tokens":900}', { outputLimit: 50 }).body)).to.deep.equal({ max_tokens: 50 });
      // A large body is edited without being parsed: only its small top-level members are.
      const big = `{"messages":[{"role":"user","content":"${'é'.repeat(1 << 20)}"}],"model":"m"}`;
      const edited = rewriteRequest(CHAT, undefined, big, { outputLimit: 7 }).body?.toString('utf8');
      expect(edited).to.equal(`${big.slice(0, -1)},"max_completion_tokens":7}`);
      expect(() => rewriteRequest(CHAT, [1, 2], '[1,2]', { outputLimit: 5 })).to.throw(RewriteError);
      expect(() => rewriteRequest(CHAT, undefined, undefined, { outputLimit: 5 })).to.throw(RewriteError);
      // without a limit to write, a body that is no object passes unchanged as before
      expect(rewriteRequest(CHAT, 'text', 'text').body).to.equal(undefined);
      // nothing to bound on embeddings, so nothing to refuse either
      expect(rewriteRequest('/v1/embeddings', 'text', 'text', { outputLimit: 5 }).body).to.equal(undefined);
    });

    it('property: every limit field the upstream reads ends at or below the cap, other members unchanged', () => {
      const limitValue = fc.oneof(fc.constant(undefined), fc.constant(null), fc.nat(5000));
      fc.assert(
        fc.property(
          fc.constantFrom(CHAT, '/v1/completions', '/v1/responses'),
          fc.record({ max_tokens: limitValue, max_completion_tokens: limitValue, max_output_tokens: limitValue }),
          fc.dictionary(fc.string(), fc.jsonValue(), { maxKeys: 4 }),
          fc.nat(3000),
          fc.boolean(),
          (path, limits, extra, cap, stream) => {
            const body: Record<string, unknown> = { ...extra, model: 'gpt-4o', stream };
            for (const [k, v] of Object.entries(limits)) if (v !== undefined) body[k] = v;
            const raw = JSON.stringify(body);
            const r = rewriteRequest(path, body, raw, { outputLimit: cap });
            // No new body: the upstream gets the raw bytes, as JSON reads them.
            const sent = (r.body === undefined ? JSON.parse(raw) : parsed(r.body)) as Record<string, unknown>;
            const fields =
              path === CHAT ? ['max_completion_tokens', 'max_tokens'] : path === '/v1/completions' ? ['max_tokens'] : ['max_output_tokens'];
            const numeric = fields.filter((k) => typeof sent[k] === 'number');
            expect(numeric.length, JSON.stringify(sent)).to.be.greaterThan(0);
            for (const k of numeric) expect(sent[k]).to.be.at.most(cap);
            // Compared as JSON reads them: -0 has no JSON spelling of its own.
            const original = JSON.parse(raw) as Record<string, unknown>;
            for (const [k, v] of Object.entries(original)) {
              if (!fields.includes(k) && k !== 'stream_options') expect(sent[k]).to.deep.equal(v);
            }
          },
        ),
        { numRuns: 300 },
      );
    });
  });
});
