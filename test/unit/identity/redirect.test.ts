import { expect } from 'chai';
import { redirectTarget } from '../../../src/identity/http-document.js';

describe('identity/http-document: redirectTarget', () => {
  const from = new URL('https://idp.example.com/.well-known/jwks.json');

  it('resolves a relative location against the document it came from', () => {
    expect(redirectTarget(from, '/keys').href).to.equal('https://idp.example.com/keys');
    expect(redirectTarget(new URL('http://127.0.0.1:8080/a'), 'b').href).to.equal('http://127.0.0.1:8080/b');
  });

  it('follows https to https on another host, and http to https', () => {
    expect(redirectTarget(from, 'https://cdn.example.net/k').href).to.equal('https://cdn.example.net/k');
    expect(redirectTarget(new URL('http://127.0.0.1/a'), 'https://idp.example.com/k').protocol).to.equal('https:');
  });

  it('refuses to leave https: keys fetched over plain http could be anyone’s', () => {
    expect(() => redirectTarget(from, 'http://idp.example.com/keys')).to.throw(
      'redirect from https to http: refused (http://idp.example.com)',
    );
    expect(() => redirectTarget(from, '//evil.example/k')).not.to.throw();
  });

  it('refuses a location that is not a URL', () => {
    expect(() => redirectTarget(from, 'http://[bad')).to.throw(/redirect to an invalid location "http:\/\/\[bad"/);
  });
});
