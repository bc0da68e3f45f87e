import { expect } from 'chai';
import {
  CREDENTIAL_HEADERS,
  credentialRemovals,
  tokenInRequest,
} from '../../../src/request/credentials.js';
import { request } from '../policy/helpers.js';

const TOKEN = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg';

describe('request/credentials', () => {
  it('always removes the other API-key, proxy, cookie and method-override headers', () => {
    for (const h of [
      'api-key',
      'x-api-key',
      'x-goog-api-key',
      'proxy-authorization',
      'cookie',
      'x-http-method-override',
    ]) {
      expect(CREDENTIAL_HEADERS).to.include(h);
    }
  });

  it('removes any other header that carries the verified token, but never authorization', () => {
    const r = credentialRemovals(
      request({
        headers: {
          authorization: `Bearer ${TOKEN}`,
          'x-forwarded-token': TOKEN,
          'user-agent': `curl ${TOKEN}`,
          'x-custom': 'harmless',
        },
      }),
      TOKEN,
    );
    expect(r.headers).to.have.members(['x-forwarded-token', 'user-agent']);
  });

  it('removes query parameters named like keys, and any holding the token, as sent and decoded', () => {
    const r = credentialRemovals(
      request({
        query: `api-key=sk-1&KEY=2&access_token=3&limit=5&x=${TOKEN}&%74oken=4&y=${encodeURIComponent(`a ${TOKEN}`)}`,
      }),
      TOKEN,
    );
    expect(r.params).to.have.members([
      'api-key',
      'KEY',
      'access_token',
      'x',
      '%74oken',
      'token',
      'y',
    ]);
    expect(credentialRemovals(request({ query: 'limit=5&after=file-1' }), TOKEN)).to.deep.equal({
      headers: [],
      params: [],
    });
  });

  it('refuses a token in the path or the body, which ext_authz cannot cut out', () => {
    expect(tokenInRequest(request({ path: `/v1/files/${TOKEN}` }), TOKEN)).to.include({
      reason: 'invalid_path',
    });
    expect(tokenInRequest(request({ body: `{"model":"m","user":"${TOKEN}"}` }), TOKEN)).to.include({
      reason: 'invalid_body',
    });
    expect(tokenInRequest(request({ body: Buffer.from(`--b\r\n${TOKEN}`) }), TOKEN)).to.include({
      reason: 'invalid_body',
    });
    expect(tokenInRequest(request({ body: '{"model":"m"}' }), TOKEN)).to.equal(undefined);
  });
});
