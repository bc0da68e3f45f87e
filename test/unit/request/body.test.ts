import { expect } from 'chai';
import { classify } from '../../../src/request/endpoint.js';
import { readBody, type BodyResult } from '../../../src/request/body.js';
import type { InboundRequest } from '../../../src/domain/request.js';
import { request } from '../policy/helpers.js';

const json = { 'content-type': 'application/json' };

/** readBody with the catalogue entry of the request, as the pipeline calls it. */
function read(req: InboundRequest): BodyResult {
  return readBody(req, classify(req.method, req.path));
}

function refusal(r: BodyResult): { reason: string; status: number; message: string } {
  if (r.ok) throw new Error('expected a refusal');
  return r.denial;
}

describe('request/body', () => {
  it('parses a JSON body and extracts a string model', () => {
    const body = JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] });
    const r = read(request({ headers: json, body }));
    expect(r).to.deep.equal({ ok: true, json: JSON.parse(body), model: 'gpt-4o' });
  });

  it('accepts JSON media types with parameters, any case, and +json suffixes', () => {
    for (const type of [
      'application/json; charset=utf-8',
      'Application/JSON',
      'application/vnd.api+json',
    ]) {
      const r = read(
        request({ path: '/custom', headers: { 'content-type': type }, body: '{"model":"m"}' }),
      );
      expect(r, type).to.deep.equal({ ok: true, json: { model: 'm' }, model: 'm' });
    }
  });

  it('parses metered endpoints whatever the content-type says, in any letter case', () => {
    for (const path of [
      '/v1/chat/completions',
      '/v1/completions',
      '/v1/embeddings',
      '/v1/responses',
      '/V1/Chat/Completions',
    ]) {
      const labels: Record<string, string>[] = [
        { 'content-type': 'text/plain' },
        { 'content-type': 'multipart/form-data; boundary=x' },
        {},
      ];
      for (const headers of labels) {
        const r = read(request({ path, headers, body: '{"model":"gpt-4o"}' }));
        expect(r, `${path} ${JSON.stringify(headers)}`).to.deep.include({
          ok: true,
          model: 'gpt-4o',
        });
      }
    }
  });

  it('reads the model of JSON endpoints with indirect model work too (rules may allow them by model)', () => {
    const r = read(
      request({
        path: '/v1/images/generations',
        headers: { 'content-type': 'text/plain' },
        body: '{"model":"gpt-image-1"}',
      }),
    );
    expect(r).to.deep.include({ ok: true, model: 'gpt-image-1' });
  });

  it('leaves non-JSON bodies of other endpoints alone', () => {
    const r = read(
      request({
        path: '/v1/audio/transcriptions',
        headers: { 'content-type': 'multipart/form-data; boundary=x' },
        body: '--x\r\n',
      }),
    );
    expect(r).to.deep.equal({ ok: true });
  });

  it('passes GET, HEAD and empty bodies of non-metered requests with nothing', () => {
    expect(
      read(request({ method: 'GET', path: '/v1/models', headers: json, body: 'not json' })),
    ).to.deep.equal({ ok: true });
    expect(read(request({ method: 'HEAD', headers: json, body: '{' }))).to.deep.equal({ ok: true });
    expect(read(request({ method: 'GET', headers: json }))).to.deep.equal({ ok: true });
    expect(read(request({ path: '/v1/files', headers: json, body: '' }))).to.deep.equal({
      ok: true,
    });
  });

  it('refuses a metered request without a body or without a model: there is nothing to judge', () => {
    expect(refusal(read(request({ headers: json })))).to.include({
      status: 400,
      reason: 'invalid_model',
    });
    expect(refusal(read(request({ headers: json, body: '' })))).to.include({
      reason: 'invalid_model',
    });
    expect(refusal(read(request({ body: '{"messages":[]}' })))).to.include({
      reason: 'invalid_model',
    });
    expect(refusal(read(request({ body: '["gpt-4o"]' })))).to.include({ reason: 'invalid_body' });
    expect(refusal(read(request({ body: 'null' })))).to.include({ reason: 'invalid_body' });
  });

  it('refuses invalid JSON with invalid_body, without echoing the body', () => {
    const secret = 'my secret prompt';
    for (const body of [
      `{"model":"gpt-4o","messages":"${secret}"`,
      `${secret}`,
      `{"model": ${secret}}`,
    ]) {
      const denial = refusal(read(request({ headers: json, body })));
      expect(denial).to.include({ status: 400, reason: 'invalid_body', code: 'invalid_body' });
      expect(denial.message).to.match(/^request body is not valid JSON: /);
      expect(denial.message).to.not.contain('secret');
    }
  });

  it('refuses invalid UTF-8 in bytes Envoy packed, and reads valid UTF-8 bytes', () => {
    const bad = Buffer.concat([
      Buffer.from('{"model":"gpt-4o","messages":[{"role":"user","content":"'),
      Buffer.from([0xff, 0xfe]),
      Buffer.from('"}]}'),
    ]);
    expect(refusal(read(request({ body: bad })))).to.include({
      reason: 'invalid_body',
      message: 'the request body is not valid UTF-8',
    });
    // A lone surrogate's UTF-8 form (ED A0 80) is invalid too, though lenient decoders pass it.
    const surrogate = Buffer.concat([
      Buffer.from('{"model":"gpt-4o","x":"'),
      Buffer.from([0xed, 0xa0, 0x80]),
      Buffer.from('"}'),
    ]);
    expect(refusal(read(request({ body: surrogate })))).to.include({ reason: 'invalid_body' });
    const good = Buffer.from('{"model":"gpt-4o","messages":[{"role":"user","content":"héllo"}]}');
    expect(read(request({ body: good }))).to.deep.include({ ok: true, model: 'gpt-4o' });
  });

  it('refuses a byte-order mark rather than guess whether the upstream skips it', () => {
    const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"model":"gpt-4o"}')]);
    expect(refusal(read(request({ body: bom })))).to.include({ reason: 'invalid_body' });
  });

  it('refuses compressed bodies on every endpoint: they cannot be judged', () => {
    for (const path of ['/v1/chat/completions', '/v1/files', '/v1/anything']) {
      const denial = refusal(
        read(request({ path, headers: { 'content-encoding': 'gzip' }, body: '\x1f\x8b...' })),
      );
      expect(denial, path).to.include({ reason: 'invalid_body' });
      expect(denial.message).to.contain('compressed');
    }
    expect(
      read(request({ headers: { 'content-encoding': 'identity' }, body: '{"model":"m"}' })),
    ).to.deep.include({ ok: true });
  });

  it('refuses a duplicated top-level member, escaped spellings included', () => {
    for (const body of [
      '{"model":"gpt-4o-mini","model":"gpt-4o"}',
      '{"model":"gpt-4o-mini","messages":[],"mod\\u0065l":"gpt-4o"}',
      '{"model":"m","n":1,"n":5}',
    ]) {
      expect(refusal(read(request({ body }))), body).to.include({ reason: 'invalid_body' });
    }
    // Nested objects may repeat names of the top level.
    expect(read(request({ body: '{"model":"m","metadata":{"model":"x"}}' }))).to.deep.include({
      ok: true,
      model: 'm',
    });
  });

  it('refuses model names that are not plain: spaces, controls, non-ASCII, non-strings', () => {
    for (const model of [
      'gpt-4o ',
      ' gpt-4o',
      'gpt 4o',
      'gpt-4o\n',
      'gpt-4o\u0000',
      'gpt\u20114o',
      'gpt-4o\u200b',
      '',
      'x'.repeat(257),
    ]) {
      const denial = refusal(read(request({ body: JSON.stringify({ model }) })));
      expect(denial, JSON.stringify(model)).to.include({
        status: 400,
        reason: 'invalid_model',
        code: 'invalid_model',
      });
    }
    for (const model of [42, null, ['gpt-4o'], { id: 'gpt-4o' }]) {
      expect(
        refusal(read(request({ body: JSON.stringify({ model }) }))),
        JSON.stringify(model),
      ).to.include({ reason: 'invalid_model' });
      // Present but unreadable is refused on every endpoint, not only metered ones.
      const other = request({ path: '/v1/images/generations', body: JSON.stringify({ model }) });
      expect(refusal(read(other)), JSON.stringify(model)).to.include({ reason: 'invalid_model' });
    }
    // Letter case is not refused (rules ignore it); fine-tune ids keep their punctuation.
    for (const model of ['GPT-4o', 'ft:gpt-4o-mini:acme::abc123', 'meta-llama/Llama-3-70B']) {
      expect(read(request({ body: JSON.stringify({ model }) })), model).to.deep.include({
        ok: true,
        model,
      });
    }
  });

  it('refuses sizing fields a lenient upstream could coerce into more than was counted', () => {
    for (const extra of [
      '"n":"5"',
      '"n":1.5',
      '"n":-1',
      '"best_of":"3"',
      '"max_tokens":"100"',
      '"max_completion_tokens":1e400',
      '"max_output_tokens":true',
      '"stream":"true"',
      '"stream":1',
      // More generations than a reservation counts (OpenAI's maximum, 128).
      '"n":129',
      '"best_of":1000',
    ]) {
      const denial = refusal(read(request({ body: `{"model":"gpt-4o",${extra}}` })));
      expect(denial, extra).to.include({ reason: 'invalid_body' });
    }
    expect(
      read(request({ body: '{"model":"gpt-4o","n":2,"max_tokens":null,"stream":false}' })),
    ).to.deep.include({ ok: true });
    expect(read(request({ body: '{"model":"gpt-4o","n":128,"best_of":128}' }))).to.deep.include({ ok: true });
  });
});
