import { expect } from 'chai';
import { readBody } from '../../../src/pipeline/body.js';
import { request } from './helpers.js';

const json = { 'content-type': 'application/json' };

describe('pipeline/body', () => {
  it('parses a JSON body and extracts a string model', () => {
    const body = JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] });
    const r = readBody(request({ headers: json, body }));
    expect(r).to.deep.equal({ ok: true, json: JSON.parse(body), model: 'gpt-4o' });
  });

  it('accepts JSON media types with parameters, any case, and +json suffixes', () => {
    for (const type of [
      'application/json; charset=utf-8',
      'Application/JSON',
      'application/vnd.api+json',
    ]) {
      const r = readBody(
        request({ path: '/custom', headers: { 'content-type': type }, body: '{"model":"m"}' }),
      );
      expect(r, type).to.deep.equal({ ok: true, json: { model: 'm' }, model: 'm' });
    }
  });

  it('parses known JSON endpoints whatever the content-type says', () => {
    for (const path of [
      '/v1/chat/completions',
      '/v1/completions',
      '/v1/embeddings',
      '/v1/responses',
    ]) {
      const r = readBody(
        request({ path, headers: { 'content-type': 'text/plain' }, body: '{"model":"gpt-4o"}' }),
      );
      expect(r, path).to.deep.include({ ok: true, model: 'gpt-4o' });
    }
  });

  it('leaves non-JSON bodies of other endpoints alone', () => {
    const r = readBody(
      request({
        path: '/v1/audio/transcriptions',
        headers: { 'content-type': 'multipart/form-data; boundary=x' },
        body: '--x\r\n',
      }),
    );
    expect(r).to.deep.equal({ ok: true });
  });

  it('passes GET, HEAD and empty bodies with nothing', () => {
    expect(
      readBody(request({ method: 'GET', path: '/v1/models', headers: json, body: 'not json' })),
    ).to.deep.equal({ ok: true });
    expect(readBody(request({ method: 'HEAD', headers: json, body: '{' }))).to.deep.equal({
      ok: true,
    });
    expect(readBody(request({ headers: json }))).to.deep.equal({ ok: true });
    expect(readBody(request({ headers: json, body: '' }))).to.deep.equal({ ok: true });
  });

  it('refuses invalid JSON with invalid_body, without echoing the body', () => {
    const secret = 'my secret prompt';
    for (const body of [
      `{"model":"gpt-4o","messages":"${secret}"`,
      `${secret}`,
      `{"model": ${secret}}`,
    ]) {
      const r = readBody(request({ headers: json, body }));
      if (r.ok) throw new Error(`expected a denial for ${body}`);
      expect(r.denial).to.include({ status: 400, reason: 'invalid_body', code: 'invalid_body' });
      expect(r.denial.message).to.match(/^request body is not valid JSON: /);
      expect(r.denial.message).to.not.contain('secret');
    }
  });

  it('has no model when the body is not an object or model is not a string', () => {
    expect(readBody(request({ headers: json, body: '{"model":42}' }))).to.deep.equal({
      ok: true,
      json: { model: 42 },
    });
    expect(readBody(request({ headers: json, body: '["gpt-4o"]' }))).to.deep.equal({
      ok: true,
      json: ['gpt-4o'],
    });
    expect(readBody(request({ headers: json, body: 'null' }))).to.deep.equal({
      ok: true,
      json: null,
    });
    expect(readBody(request({ headers: json, body: '"gpt-4o"' }))).to.deep.equal({
      ok: true,
      json: 'gpt-4o',
    });
  });
});
