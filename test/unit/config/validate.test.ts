import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseConfig } from '../../../src/config/load.js';
import { ConfigError } from '../../../src/config/problems.js';
import { FIXTURES, MINIMAL, describeProblems, problemsOf } from './helpers.js';

const fixture = (name: string): string => readFileSync(join(FIXTURES, name), 'utf8');

describe('config/validate: broken fixtures (path, line, message)', () => {
  it('reports typos with a suggestion, and the missing key they cause', () => {
    expect(describeProblems(fixture('broken-typo.yaml'))).to.deep.equal([
      '3: authentication[0].provider.issuer: is required',
      '3: authentication[0].provider: needs `clientId` or `audiences`: a token is only accepted for an audience listed here',
      '4: authentication[0].provider.isuer: unknown key `isuer`; did you mean `issuer`?',
      '5: authentication[0].provider.clientID: unknown key `clientID`; did you mean `clientId`?',
      '6: rateLimit: unknown key `rateLimit`; did you mean `rateLimits`?',
    ]);
  });

  it('reports wrong types and out-of-range values without falling back to defaults', () => {
    expect(describeProblems(fixture('broken-types.yaml'))).to.deep.equal([
      '2: server.grpc: expected a string, got the number 9001 (quote it to make it a string)',
      '3: server.shutdownGraceSeconds: expected an integer, got the string "ten"',
      '7: authentication[0].provider.issuer: expected an http(s) URL, got scheme "ftp:"',
      '9: authentication[0].provider.clockSkewSeconds: expected an integer, got the string "30"',
      '10: authentication[0].provider.maxTokenBytes: expected an integer, got the number 1.5',
      "11: authentication[0].provider.algorithms[0]: HS256 is refused: shared-secret (HS*) algorithms cannot be verified against the issuer's public keys",
      '11: authentication[0].provider.algorithms[1]: `none` is never accepted: tokens must be signed',
      '14: rateLimits[0].requestsPerUnit: must be at least 1, got 0',
      '17: tokenBudgets: expected a list, got a mapping',
    ]);
  });

  it('reports duplicates, pointing at the first occurrence', () => {
    expect(describeProblems(fixture('broken-duplicates.yaml'))).to.deep.equal([
      '7: authentication[1].provider.name: duplicate provider name "corp" (first at authentication[0].provider.name, line 3)',
      '8: authentication[1].provider.issuer: duplicate issuer "https://auth.myorg.com" (first at authentication[0].provider.issuer, line 4)',
      '14: authorization.rules[1].name: duplicate rule name "r1" (first at authorization.rules[0].name, line 12)',
      '18: rateLimits[1].name: duplicate rate limit name "l1" (first at rateLimits[0].name, line 17)',
      '21: tokenBudgets[1].tenant: duplicate budget for tenant "marketing" (first at tokenBudgets[0].tenant, line 20)',
      '24: identityHeaders.x-user: duplicate header "x-user" (first at identityHeaders.X-User, line 23)',
    ]);
  });

  it('reports bad enum values, suggesting near misses', () => {
    expect(describeProblems(fixture('broken-enums.yaml'))).to.deep.equal([
      '4: authorization.default: expected one of allow | deny, got the string "allowed"; did you mean `allow`?',
      '7: authorization.rules[0].action: expected one of allow | deny, got the string "permit"',
      '11: rateLimits[0].unit: expected one of second | minute | hour | day, got the string "minutes"; did you mean `minute`?',
      '15: tokenBudgets[0].period: expected one of minute | hour | day | week | month, got the string "monthly"; did you mean `month`?',
      '19: store.redis.onUnavailable: expected one of closed | open | local, got the string "fail-open"',
      '21: logging.level: expected one of trace | debug | info | warn | error | fatal | silent, got the string "verbose"',
    ]);
  });

  it('reports YAML syntax errors with their line, and only them', () => {
    const problems = problemsOf(fixture('broken-syntax.yaml'));
    expect(problems).to.have.length(1);
    expect(problems[0]?.line).to.equal(5);
    expect(problems[0]?.message).to.match(/^YAML syntax error: Flow sequence/);
  });
});

describe('config/validate: inline cases', () => {
  it('refuses non-mapping roots and empty files', () => {
    expect(describeProblems('')).to.deep.equal([
      '-: : the configuration is empty: expected a mapping with at least `authentication`',
    ]);
    expect(describeProblems('# only a comment\n')[0]).to.contain('the configuration is empty');
    expect(describeProblems('- a\n- b\n')).to.deep.equal([
      '1: : expected a mapping at the top level, got a list',
    ]);
    expect(describeProblems('42\n')).to.deep.equal([
      '1: : expected a mapping at the top level, got the number 42',
    ]);
  });

  it('requires at least one provider', () => {
    expect(describeProblems('logging: { level: info }\n')).to.deep.equal([
      '1: authentication: is required: list at least one identity provider',
    ]);
    expect(describeProblems('authentication: []\n')).to.deep.equal([
      '1: authentication: must list at least one identity provider',
    ]);
    expect(describeProblems('authentication:\n  - name: corp\n')).to.deep.equal([
      '2: authentication[0].name: unknown key `name` (expected one of: provider)',
      '2: authentication[0].provider: is required',
    ]);
  });

  it('checks provider values', () => {
    const text = `authentication:
  - provider:
      name: corp
      issuer: not a url
      audiences: []
      jwksUri: file:///etc/jwks.json
      algorithms: [RS256, XS999, RS256]
      clockSkewSeconds: 301
      claims: { user: "", team: x }
`;
    expect(describeProblems(text)).to.deep.equal([
      '4: authentication[0].provider.issuer: expected an http(s) URL, got "not a url"',
      '5: authentication[0].provider.audiences: must not be an empty list (it would never match)',
      '6: authentication[0].provider.jwksUri: expected an http(s) URL, got scheme "file:"',
      '7: authentication[0].provider.algorithms[1]: unsupported algorithm "XS999" (supported: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA)',
      '8: authentication[0].provider.clockSkewSeconds: must be between 0 and 300, got 301',
      '9: authentication[0].provider.claims.team: unknown key `team` (expected one of: user, groups, tenant)',
      '9: authentication[0].provider.claims.user: must not be empty',
    ]);
  });

  it('checks identity header names', () => {
    const text = `${MINIMAL}identityHeaders:
  Authorization: sub
  host: sub
  x-envoy-original-path: sub
  "bad header": sub
  content-type: sub
  x-ok: ""
`;
    expect(describeProblems(text)).to.deep.equal([
      '4: identityHeaders.Authorization: `authorization` is reserved and cannot carry identity',
      '5: identityHeaders.host: `host` is reserved and cannot carry identity',
      '6: identityHeaders.x-envoy-original-path: x-envoy-* headers belong to Envoy and cannot carry identity',
      '7: identityHeaders["bad header"]: not a valid HTTP header name: "bad header"',
      '8: identityHeaders.content-type: `content-type` is reserved and cannot carry identity',
      '9: identityHeaders.x-ok: must not be empty',
    ]);
    expect(describeProblems(`${MINIMAL}identityHeaders: { ":authority": sub }\n`)).to.deep.equal([
      '3: identityHeaders[":authority"]: HTTP/2 pseudo-headers cannot be identity headers',
    ]);
  });

  it('checks match blocks', () => {
    const text = `${MINIMAL}authorization:
  rules:
    - name: a
      match:
        path: v1/chat
        methods: [POST, FETCH]
        models: []
        claims: { groups: [ml, 3], email: }
      action: allow
    - name: b
      match: { path: "/v1/*/x" }
      action: deny
    - name: c
      match: { path: "/v1/models?x=1" }
`;
    expect(describeProblems(text)).to.deep.equal([
      '7: authorization.rules[0].match.path: must start with "/", got "v1/chat"',
      '8: authorization.rules[0].match.methods: unknown HTTP method "FETCH"',
      '9: authorization.rules[0].match.models: must not be an empty list (it would never match)',
      '10: authorization.rules[0].match.claims.groups[1]: expected a string, got the number 3 (quote it to make it a string)',
      '10: authorization.rules[0].match.claims.email: expected a string or a list of strings, got nothing',
      '13: authorization.rules[1].match.path: may contain `*` only at the end (prefix match)',
      '15: authorization.rules[2].action: is required',
      '16: authorization.rules[2].match.path: must be a bare path without query string, fragment or spaces',
    ]);
  });

  it('checks rate limits', () => {
    const text = `${MINIMAL}rateLimits:
  - name: a
    requestsPerUnit: 1.5
  - requestsPerUnit: 10
    unit: hour
    key: ""
`;
    expect(describeProblems(text)).to.deep.equal([
      '4: rateLimits[0].unit: is required',
      '5: rateLimits[0].requestsPerUnit: expected an integer, got the number 1.5',
      '6: rateLimits[1].name: is required',
      '8: rateLimits[1].key: must not be empty',
    ]);
  });

  it('checks concurrency limits: maxConcurrent, requestsPerUnit with unit, or both; never neither', () => {
    const text = `${MINIMAL}rateLimits:
  - name: none
    key: user
  - name: zero
    maxConcurrent: 0
  - name: half
    maxConcurrent: 2
    unit: minute
  - name: typo
    maxConcurrent: "2"
`;
    expect(describeProblems(text)).to.deep.equal([
      '4: rateLimits[0]: needs `requestsPerUnit` with `unit` (requests per window), `maxConcurrent` (requests in flight) or both',
      '7: rateLimits[1].maxConcurrent: must be between 1 and 100000, got 0',
      '8: rateLimits[2].requestsPerUnit: is required',
      '12: rateLimits[3].maxConcurrent: expected an integer, got the string "2"',
    ]);
  });

  it('reads a concurrency-only limit, and one with a window too', () => {
    const cfg = parseConfig(`${MINIMAL}rateLimits:
  - { name: streams, maxConcurrent: 2, key: tenant }
  - { name: both, maxConcurrent: 5, requestsPerUnit: 60, unit: minute }
`, 'test.yaml');
    expect(cfg.rateLimits).to.deep.equal([
      { name: 'streams', match: { claims: {} }, maxConcurrent: 2, key: 'tenant' },
      { name: 'both', match: { claims: {} }, requestsPerUnit: 60, unit: 'minute', maxConcurrent: 5, key: 'user' },
    ]);
  });

  it('checks token budgets: one subject, positive integer, IANA zone', () => {
    const text = `${MINIMAL}tokenBudgets:
  - { maxTokens: 10, period: day }
  - { tenant: a, group: b, maxTokens: 10, period: day }
  - { user: u, maxTokens: 0, period: day, timeZone: Mars/Olympus }
  - { group: g, period: day }
`;
    expect(describeProblems(text)).to.deep.equal([
      '4: tokenBudgets[0]: needs exactly one of `tenant`, `group` or `user` (none is set)',
      '5: tokenBudgets[1]: needs exactly one of `tenant`, `group` or `user` (found tenant and group)',
      '6: tokenBudgets[2].maxTokens: must be at least 1, got 0',
      '6: tokenBudgets[2].timeZone: unknown IANA time zone "Mars/Olympus" (for example UTC or Europe/Berlin)',
      '7: tokenBudgets[3]: needs `maxTokens` (tokens), `maxCost` (USD) or both',
    ]);
  });

  it('allows the same subject name for different kinds, and canonicalizes time zones', () => {
    const cfg = parseConfig(`${MINIMAL}tokenBudgets:
  - { tenant: x, maxTokens: 1, period: day, timeZone: utc }
  - { group: x, maxTokens: 1, period: day }
  - { user: x, maxTokens: 1, period: day }
`);
    expect(cfg.tokenBudgets.map((b) => b.timeZone)).to.deep.equal(['UTC', 'UTC', 'UTC']);
  });

  it('checks server addresses and the store', () => {
    const text = `${MINIMAL}server:
  grpc: "0.0.0.0:70000"
  metrics: true
store:
  redis:
    url: http://localhost:6379
    timeoutMs: 0
`;
    expect(describeProblems(text)).to.deep.equal([
      '4: server.grpc: expected host:port (port 0-65535, 0 = any free port), got "0.0.0.0:70000"',
      '5: server.metrics: expected a string, got the boolean true (quote it to make it a string)',
      '8: store.redis.url: expected a redis:// or rediss:// URL with a host, or { env: NAME } / { file: PATH }',
      '9: store.redis.timeoutMs: must be between 1 and 60000, got 0',
    ]);
  });

  it('checks upstream secret references', () => {
    const text = `${MINIMAL}upstream:
  apiKey: { env: OPENAI_API_KEY, file: /x }
  tenants:
    a: { apiKey: { env: "1BAD" } }
    b: { project: p }
    c: { apiKey: { envv: X } }
`;
    expect(describeProblems(text)).to.deep.equal([
      '4: upstream.apiKey: needs exactly one of `env` (variable name) or `file` (path)',
      '6: upstream.tenants.a.apiKey.env: not a valid environment variable name: "1BAD"',
      '7: upstream.tenants.b.apiKey: is required',
      '8: upstream.tenants.c.apiKey.envv: unknown key `envv`; did you mean `env`?',
    ]);
  });

  it('reports unknown aliases, non-string keys and YAML warnings', () => {
    expect(describeProblems(`${MINIMAL}rateLimits: *nope\n`)).to.deep.equal([
      '3: rateLimits: unknown alias `*nope`',
    ]);
    expect(describeProblems(`${MINIMAL}identityHeaders: { ? [a] : b }\n`)[0]).to.equal(
      '3: identityHeaders: keys must be non-empty strings, got a list',
    );
    expect(describeProblems(`${MINIMAL}logging: { level: !custom info }\n`)[0]).to.match(
      /^3: : YAML warning: Unresolved tag: !custom/,
    );
    expect(describeProblems('a: 1\na: 2\n')[0]).to.match(
      /^2: : YAML syntax error: Map keys must be unique/,
    );
  });

  it('allows a subject one budget and one tokens-per-minute limit, not two of either', () => {
    const both = `${MINIMAL}tokenBudgets:
  - { tenant: acme, maxTokens: 1000000, period: month }
  - { tenant: acme, maxTokens: 30000, period: minute }
`;
    expect(parseConfig(both, 'tollgate.yaml').tokenBudgets.map((b) => b.period)).to.deep.equal(['month', 'minute']);
    expect(
      describeProblems(`${both}  - { tenant: acme, maxTokens: 20000, period: minute }\n  - { tenant: acme, maxTokens: 9, period: day }\n`).map((p) =>
        p.replace(/^\d+: /, ''),
      ),
    ).to.deep.equal([
      'tokenBudgets[2].tenant: duplicate budget for tenant "acme" per minute (first at tokenBudgets[1].tenant, line 5)',
      'tokenBudgets[3].tenant: duplicate budget for tenant "acme" (first at tokenBudgets[0].tenant, line 4)',
    ]);
  });

  it('keeps claim keys like __proto__ as plain data', () => {
    const cfg = parseConfig(`${MINIMAL}rateLimits:
  - name: a
    match: { claims: { __proto__: x, constructor: y } }
    requestsPerUnit: 1
    unit: second
`);
    const claims = cfg.rateLimits[0]?.match.claims ?? {};
    expect(Object.keys(claims)).to.deep.equal(['__proto__', 'constructor']);
    expect(Object.getPrototypeOf(claims)).to.equal(Object.prototype);
  });

  it('throws only ConfigError, even for non-string input', () => {
    expect(() => parseConfig(undefined as unknown as string)).to.throw(
      ConfigError,
      'must be a string',
    );
  });
});
