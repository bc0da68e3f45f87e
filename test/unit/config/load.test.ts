import { expect } from 'chai';
import { join } from 'node:path';
import { loadConfigFile, parseConfig } from '../../../src/config/load.js';
import { DEFAULT_ALGORITHMS } from '../../../src/config/schema.js';
import { ConfigError } from '../../../src/config/problems.js';
import { FIXTURES, MINIMAL } from './helpers.js';

describe('config/load: valid files', () => {
  it('loads the article snippets verbatim (authentication, rateLimits, tokenBudgets)', async () => {
    const cfg = await loadConfigFile(join(FIXTURES, 'article.yaml'));
    expect(cfg.authentication).to.have.length(1);
    expect(cfg.authentication[0]).to.include({
      name: 'oidc-auth',
      issuer: 'https://auth.myorg.com',
      jwksUri: 'https://auth.myorg.com/.well-known/jwks.json',
    });
    expect(cfg.authentication[0]?.audiences).to.deep.equal(['envoy-gateway']);
    expect(cfg.rateLimits).to.deep.equal([
      {
        name: 'user-limit',
        match: { path: '/v1/chat/completions', claims: { email: ['*@myorg.com'] } },
        requestsPerUnit: 100,
        unit: 'minute',
        key: 'user',
      },
    ]);
    expect(cfg.tokenBudgets).to.deep.equal([
      { tenant: 'marketing', maxTokens: 100000, period: 'month', timeZone: 'UTC' },
    ]);
  });

  it('loads DESIGN section 2 (main example plus extensions) verbatim', async () => {
    const cfg = await loadConfigFile(join(FIXTURES, 'design-example.yaml'));
    expect(cfg.server).to.deep.equal({
      grpc: '0.0.0.0:9001',
      metrics: '0.0.0.0:9464',
      shutdownGraceSeconds: 10,
      maxRequestBytes: 75497472,
      workers: 1,
      heapGrowingPercent: 30,
    });
    expect(cfg.upstream).to.deep.equal({ apiKey: { env: 'OPENAI_API_KEY' }, tenants: {} });
    expect(cfg.identityHeaders).to.deep.equal({
      'x-user-id': 'sub',
      'x-user-email': 'email',
      'x-tenant-id': 'tenant_id',
      'x-user-groups': 'groups',
    });
    expect(cfg.authorization.default).to.equal('allow');
    expect(cfg.authorization.rules.map((r) => [r.name, r.action, r.mode])).to.deep.equal([
      ['ml-team-may-use-gpt4', 'allow', 'enforce'],
      ['nobody-else-gpt4', 'deny', 'enforce'],
    ]);
    expect(cfg.authorization.rules[0]?.match).to.deep.equal({
      path: '/v1/chat/completions',
      models: ['gpt-4o*'],
      claims: { groups: ['ml-team'] },
    });
    expect(cfg.store.redis).to.deep.equal({
      url: 'redis://127.0.0.1:6379',
      timeoutMs: 50,
      onUnavailable: 'local',
      keyPrefix: 'tollgate:',
    });
  });

  it('loads a file that sets every key, normalizing values', async () => {
    const cfg = await loadConfigFile(join(FIXTURES, 'full.yaml'));
    expect(cfg.server).to.deep.equal({
      grpc: '127.0.0.1:0',
      metrics: '[::1]:9464',
      metricsToken: { file: '/run/secrets/tollgate-metrics-token' },
      shutdownGraceSeconds: 5,
      maxRequestBytes: 2097152,
      workers: 2,
      heapGrowingPercent: 50,
    });
    const [corp, partners] = cfg.authentication;
    expect(corp?.audiences).to.deep.equal(['envoy-gateway', 'tollgate']);
    expect(corp?.algorithms).to.deep.equal(['RS256', 'ES384']);
    expect(corp?.claims).to.deep.equal({
      user: 'preferred_username',
      groups: 'realm_access.roles',
      tenant: 'org',
    });
    expect(corp).to.include({
      clockSkewSeconds: 0,
      maxTokenBytes: 16384,
      jwksCooldownSeconds: 60,
      jwksCacheMaxAgeSeconds: 3600,
      jwksTimeoutMs: 500,
    });
    expect(partners?.issuer).to.equal('http://127.0.0.1:8080');
    // A numeric tenant name keeps the text written in the file.
    expect(Object.keys(cfg.upstream.tenants).sort()).to.deep.equal(['2024', 'marketing']);
    expect(cfg.upstream.tenants['marketing']).to.deep.equal({
      apiKey: { env: 'OPENAI_KEY_MARKETING' },
      project: 'proj_123',
      organization: 'org-abc',
    });
    expect(cfg.identityHeaders).to.deep.equal({ 'x-user-id': 'sub', 'x-user-groups': 'groups' });
    expect(cfg.authorization).to.include({ default: 'deny', mode: 'shadow' });
    const [admins, rest] = cfg.authorization.rules;
    expect(admins?.match).to.deep.equal({
      path: '/v1/*',
      methods: ['POST', 'GET'],
      models: ['gpt-4o*'],
      claims: { groups: ['admins', 'ml-team'], 'https://example.com/tier': ['gold'] },
    });
    expect(admins?.mode).to.equal('enforce');
    // A rule without `mode` is enforced (the section's shadow mode applies to the whole
    // decision, not to each rule); without `match` it matches everything.
    expect(rest).to.deep.equal({
      name: 'everyone-else',
      match: { claims: {} },
      action: 'deny',
      mode: 'enforce',
    });
    expect(cfg.rateLimits[0]?.key).to.equal('tenant');
    expect(
      cfg.tokenBudgets.map((b) => [b.group ?? b.user ?? b.tenant, b.period, b.timeZone]),
    ).to.deep.equal([
      ['ml-team', 'week', 'Europe/Berlin'],
      ['alice@example.com', 'hour', 'UTC'],
      ['marketing', 'month', 'UTC'],
    ]);
    expect(cfg.metering.defaultMaxOutputTokens).to.equal(1024);
    expect(cfg.store.redis).to.deep.equal({
      url: 'rediss://user:pass@redis.example.com:6380/2',
      timeoutMs: 25,
      onUnavailable: 'open',
      keyPrefix: '',
    });
    expect(cfg.logging.level).to.equal('debug');
  });
});

describe('config/load: defaults', () => {
  it('applies every default to a minimal file', () => {
    const cfg = parseConfig(MINIMAL);
    expect(cfg).to.deep.equal({
      server: { grpc: '0.0.0.0:9001', metrics: '0.0.0.0:9464', shutdownGraceSeconds: 10, maxRequestBytes: 75497472, workers: 1, heapGrowingPercent: 30 },
      authentication: [
        {
          name: 'corp',
          issuer: 'https://auth.example.com',
          audiences: ['envoy'],
          algorithms: [...DEFAULT_ALGORITHMS],
          clockSkewSeconds: 30,
          maxTokenBytes: 8192,
          claims: { user: 'email', groups: 'groups', tenant: 'tenant_id' },
          jwksCooldownSeconds: 30,
          jwksCacheMaxAgeSeconds: 600,
          jwksTimeoutMs: 2000,
        },
      ],
      upstream: { tenants: {} },
      identityHeaders: {},
      authorization: { default: 'allow', mode: 'enforce', rules: [] },
      rateLimits: [],
      tokenBudgets: [],
      metering: { defaultMaxOutputTokens: 4096 },
      store: {},
      logging: { level: 'info' },
    });
  });

  it('fills partial sections and keeps the untouched defaults', () => {
    const cfg = parseConfig(`${MINIMAL}server: { grpc: "localhost:0" }\n`);
    expect(cfg.server).to.deep.equal({
      grpc: 'localhost:0',
      metrics: '0.0.0.0:9464',
      shutdownGraceSeconds: 10,
      maxRequestBytes: 75497472,
      workers: 1, heapGrowingPercent: 30,
    });
  });

  it('disables metrics with false or an empty value', () => {
    expect(parseConfig(`${MINIMAL}server: { metrics: false }\n`).server.metrics).to.equal(
      undefined,
    );
    expect(parseConfig(`${MINIMAL}server:\n  metrics:\n`).server.metrics).to.equal(undefined);
    expect(parseConfig(`${MINIMAL}server: { metrics: null }\n`).server).to.not.have.property(
      'metrics',
    );
  });

  it('accepts empty sections as their empty defaults', () => {
    const cfg = parseConfig(
      `${MINIMAL}rateLimits:\ntokenBudgets: []\nidentityHeaders:\nstore:\nauthorization:\n`,
    );
    expect(cfg.rateLimits).to.deep.equal([]);
    expect(cfg.tokenBudgets).to.deep.equal([]);
    expect(cfg.identityHeaders).to.deep.equal({});
    expect(cfg.store).to.deep.equal({});
    expect(cfg.authorization).to.deep.equal({ default: 'allow', mode: 'enforce', rules: [] });
  });

  it('resolves anchors and aliases', () => {
    const cfg = parseConfig(`${MINIMAL}rateLimits:
  - name: a
    match: &chat { path: /v1/chat/completions }
    requestsPerUnit: 1
    unit: second
  - name: b
    match: *chat
    requestsPerUnit: 2
    unit: second
`);
    expect(cfg.rateLimits[1]?.match.path).to.equal('/v1/chat/completions');
  });
});

describe('config/load: result and errors', () => {
  it('returns a deeply frozen Config', () => {
    const cfg = parseConfig(`${MINIMAL}tokenBudgets: [{ tenant: t, maxTokens: 5, period: day }]\n`);
    expect(Object.isFrozen(cfg)).to.equal(true);
    expect(Object.isFrozen(cfg.authentication)).to.equal(true);
    expect(Object.isFrozen(cfg.authentication[0]?.audiences)).to.equal(true);
    expect(Object.isFrozen(cfg.authentication[0]?.claims)).to.equal(true);
    expect(Object.isFrozen(cfg.tokenBudgets[0])).to.equal(true);
    expect(() => (cfg.authentication as unknown as unknown[]).push(1)).to.throw(TypeError);
    // Freezing the result must not freeze the shared default list of another module.
    expect(Object.isFrozen(DEFAULT_ALGORITHMS)).to.equal(false);
  });

  it('throws ConfigError naming the file for an unreadable path', async () => {
    const err = await loadConfigFile(join(FIXTURES, 'does-not-exist.yaml')).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).to.be.instanceOf(ConfigError);
    expect((err as ConfigError).file).to.match(/does-not-exist\.yaml$/);
    expect((err as ConfigError).problems[0]?.message).to.match(
      /cannot read the configuration file: .*ENOENT/,
    );
  });

  it('puts file and every problem in the error message', () => {
    try {
      parseConfig('authentication: []\nlogging: { level: loud }\n', 'conf.yaml');
      expect.fail('should have thrown');
    } catch (err) {
      expect(err).to.be.instanceOf(ConfigError);
      const message = (err as ConfigError).message;
      expect(message).to.contain('invalid configuration (2 problems)');
      expect(message).to.contain(
        'conf.yaml:1: authentication: must list at least one identity provider',
      );
      expect(message).to.contain('conf.yaml:2: logging.level: expected one of');
    }
  });
});
