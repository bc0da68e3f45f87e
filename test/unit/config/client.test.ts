import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { parseClientConfig } from '../../../src/config/client.js';
import { ConfigError } from '../../../src/config/problems.js';

function problems(text: string): string[] {
  try {
    parseClientConfig(text, 'client.yaml');
  } catch (err) {
    expect(err).to.be.instanceOf(ConfigError);
    return (err as ConfigError).problems.map((p) => `${p.line ?? '?'}: ${p.path}: ${p.message}`);
  }
  expect.fail('expected problems');
}

const LOGIN_DOC = readFileSync(join(import.meta.dirname, '..', '..', '..', 'docs', 'login.md'), 'utf8');

describe('config/client: the developer client configuration', () => {
  it('accepts the examples of docs/login.md', () => {
    const blocks = [...LOGIN_DOC.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');
    expect(blocks).to.have.length.at.least(1);
    for (const [i, text] of blocks.entries()) {
      expect(() => parseClientConfig(text, `docs/login.md block ${i + 1}`)).to.not.throw();
    }
  });

  it('reads top-level defaults, profiles and the current profile', () => {
    const cfg = parseClientConfig(`
issuer: https://login.example.com
clientId: tollgate-cli
scope: "openid   offline_access"
profile: staging
profiles:
  staging:
    issuer: https://login.staging.example.com
    resource: https://gateway.staging.example.com
    token: id
`);
    expect(cfg.profile).to.equal('staging');
    expect(cfg.defaults).to.deep.equal({ issuer: 'https://login.example.com', clientId: 'tollgate-cli', scope: 'openid offline_access' });
    expect(cfg.profiles).to.deep.equal({
      staging: { issuer: 'https://login.staging.example.com', resource: 'https://gateway.staging.example.com', token: 'id' },
    });
  });

  it('reads the gateway URL of `tollgate whoami`, top-level and per profile, and refuses one that is not http(s)', () => {
    const cfg = parseClientConfig('url: https://ai.example.com/v1\nprofiles:\n  dev: { url: "http://127.0.0.1:10000" }\n');
    expect(cfg.defaults).to.deep.equal({ url: 'https://ai.example.com/v1' });
    expect(cfg.profiles).to.deep.equal({ dev: { url: 'http://127.0.0.1:10000' } });
    expect(problems('url: ftp://ai.example.com\n')).to.deep.equal(['1: url: expected an http(s) URL, got scheme "ftp:"']);
  });

  it('accepts an empty file and an empty profile', () => {
    expect(parseClientConfig('')).to.deep.equal({ defaults: {}, profiles: {} });
    expect(parseClientConfig('profiles:\n  work:\n').profiles).to.deep.equal({ work: {} });
  });

  it('reports every problem with its path and line', () => {
    expect(
      problems(`issuer: ftp://login.example.com
clientid: x
token: refresh
profiles:
  ../etc: { issuer: https://a.example.com }
  ok: { scope: "a\\\\b", resource: "https://gw.example.com#frag" }
`),
    ).to.deep.equal([
      '1: issuer: expected an http(s) URL, got scheme "ftp:"',
      '2: clientid: unknown key `clientid`; did you mean `clientId`?',
      '3: token: expected one of access | id, got the string "refresh"',
      `5: profiles["../etc"]: profile names are 1-64 letters, digits, '.', '_' or '-' (starting with a letter or digit), got "../etc"`,
      `6: profiles.ok.scope: a scope is space-separated printable ASCII without '"' or '\\', got the string "a\\\\b"`,
      '6: profiles.ok.resource: a resource indicator is an absolute URI without a fragment, got "https://gw.example.com#frag"',
    ]);
  });

  it('refuses a current profile that names none of the profiles, and YAML syntax errors', () => {
    expect(problems('profile: work\nprofiles:\n  home: {}\n')).to.deep.equal(['1: profile: names no profile under `profiles` (have: home)']);
    expect(problems('profile: work\n')).to.deep.equal(['1: profile: names no profile under `profiles` (have: none)']);
    expect(parseClientConfig('profile: default\nprofiles:\n  home: {}\n').profile).to.equal('default');
    expect(problems('issuer: [unclosed\n')[0]).to.match(/YAML syntax error/);
    expect(problems('- a list\n')[0]).to.match(/expected a mapping, got a list/);
  });
});
