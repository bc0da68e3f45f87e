/**
 * Claim policies, tenants and request-body errors end to end: real Envoy + `tollgate stack` +
 * two dev issuers (an Okta-shaped one with a flat `groups` claim, a Keycloak-shaped one with
 * `realm_access.roles`) + the dev upstream, with the official openai SDK as the client.
 */
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import OpenAI from 'openai';
import { DevIssuer } from '../../src/dev/issuer.js';
import { DevUpstream } from '../../src/dev/upstream.js';
import { startEnvoy, type RunningEnvoy } from '../../src/stack/envoy.js';
import { metricValue, scrapeMetrics } from '../helpers/prometheus.js';
import { startStack, type StackProcess } from '../helpers/stack.js';

const DEFAULT_KEY = 'sk-default-test-key';
const MARKETING_KEY = 'sk-marketing-test-key';
const HI = [{ role: 'user' as const, content: 'hi' }];

function configYaml(okta: DevIssuer, keycloak: DevIssuer): string {
  return `
server: { grpc: 127.0.0.1:0, metrics: 127.0.0.1:0, maxRequestBytes: 1048576 }
authentication:
  - provider: { name: okta, issuer: ${okta.url}, clientId: tollgate-test }
  - provider:
      name: keycloak
      issuer: ${keycloak.url}
      clientId: tollgate-test
      claims: { user: preferred_username, groups: realm_access.roles, tenant: tenant }
upstream:
  apiKey: { env: TEST_DEFAULT_KEY }
  tenants:
    marketing:
      apiKey: { env: TEST_MARKETING_KEY }
      project: proj_marketing
      organization: org-marketing
authorization:
  default: allow
  rules:
    - name: trial-block-gpt41
      match: { models: ["gpt-4.1*"] }
      action: deny
      mode: shadow
    - name: ml-team-may-use-reasoning
      match:
        path: /v1/chat/completions
        models: ["o3*"]
        claims: { groups: ml-team }
      action: allow
    - name: nobody-else-reasoning
      match: { models: ["o3*"] }
      action: deny
    - name: no-embeddings-for-contractors
      match:
        path: /v1/embeddings
        claims: { email: "*@contractors.example" }
      action: deny
`;
}

interface ErrorBody {
  error: { message: string; type: string; param: null; code: string };
}

/**
 * Asserts `res` is a JSON error envelope with this status, x-tollgate-reason, type and code
 * (and `param: null`); returns the body for further checks.
 */
async function expectEnvelope(
  res: Response,
  status: number,
  reason: string,
  error: { type: string; code: string },
): Promise<ErrorBody> {
  expect(res.status).to.equal(status);
  expect(res.headers.get('content-type')).to.equal('application/json');
  expect(res.headers.get('x-tollgate-reason')).to.equal(reason);
  const body = (await res.json()) as ErrorBody;
  expect(body.error).to.include({ ...error, param: null });
  return body;
}

describe('e2e: claim policies, tenants and body errors through real Envoy', function () {
  this.timeout(60000);
  let okta: DevIssuer;
  let keycloak: DevIssuer;
  let upstream: DevUpstream;
  let stack: StackProcess;

  const client = (apiKey: string) =>
    new OpenAI({ baseURL: `${stack.ready.envoy}/v1`, apiKey, maxRetries: 0, timeout: 10000 });
  const mlUser = () =>
    okta.mint({ sub: 'u-ml', email: 'ada@myorg.com', groups: ['eng', 'ml-team'] });
  const salesUser = () => okta.mint({ sub: 'u-sales', email: 'bob@myorg.com', groups: ['sales'] });
  const failure = (p: Promise<unknown>) =>
    p.then(
      () => undefined,
      (e: unknown) => e,
    );
  const post = (path: string, token: string, body: string) =>
    fetch(`${stack.ready.envoy}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body,
    });

  before(async () => {
    okta = await DevIssuer.start({ audience: 'tollgate-test' });
    keycloak = await DevIssuer.start({ audience: 'tollgate-test' });
    upstream = await DevUpstream.start();
    stack = await startStack({
      config: configYaml(okta, keycloak),
      upstream: upstream.url,
      env: { TEST_DEFAULT_KEY: DEFAULT_KEY, TEST_MARKETING_KEY: MARKETING_KEY },
    });
  });

  after(async () => {
    await stack?.stop();
    await Promise.all([okta?.close(), keycloak?.close(), upstream?.close()]);
  });

  it('lets a member of the allowed group use the restricted model', async () => {
    const res = await client(await mlUser()).chat.completions.create({
      model: 'o3-mini',
      messages: HI,
    });
    expect(res.model).to.equal('o3-mini');
    expect(JSON.parse(upstream.received.at(-1)!.body).model).to.equal('o3-mini');
  });

  it('refuses the restricted model to anyone else: 403 model_not_allowed, naming the rule', async () => {
    const token = await salesUser();
    const before = upstream.received.length;
    const res = await post(
      '/v1/chat/completions',
      token,
      JSON.stringify({ model: 'o3-mini', messages: HI }),
    );
    const body = await expectEnvelope(res, 403, 'model_not_allowed', {
      type: 'permission_denied',
      code: 'model_not_allowed',
    });
    expect(body.error.message).to.contain('"nobody-else-reasoning"');

    const err = await failure(
      client(token).chat.completions.create({ model: 'o3-mini', messages: HI }),
    );
    expect(err).to.be.instanceOf(OpenAI.PermissionDeniedError);
    expect((err as InstanceType<typeof OpenAI.PermissionDeniedError>).code).to.equal(
      'model_not_allowed',
    );
    expect(upstream.received.length).to.equal(before);

    const audit = stack
      .logLines()
      .filter((l) => l['audit'] === 'decision' && l['decision'] === 'deny');
    expect(audit.at(-1)).to.include({
      reason: 'model_not_allowed',
      rule: 'nobody-else-reasoning',
      model: 'o3-mini',
      subject: 'u-sales',
      status: 403,
    });
  });

  it('keeps every other model open to everyone', async () => {
    const res = await client(await salesUser()).chat.completions.create({
      model: 'gpt-4o-mini',
      messages: HI,
    });
    expect(res.choices[0]?.message.content).to.be.a('string').and.not.empty;
  });

  it('answers a non-model rule with 403 access_denied (glob on a claim path)', async () => {
    const token = await okta.mint({
      sub: 'u-c',
      email: 'carl@contractors.example',
      groups: ['ml-team'],
    });
    const err = await failure(
      client(token).embeddings.create({ model: 'text-embedding-3-small', input: 'x' }),
    );
    expect(err).to.be.instanceOf(OpenAI.PermissionDeniedError);
    const denied = err as InstanceType<typeof OpenAI.PermissionDeniedError>;
    expect(denied.code).to.equal('access_denied');
    expect(denied.type).to.equal('permission_denied');
    expect(denied.headers?.get('x-tollgate-reason')).to.equal('access_denied');
    // The same caller may still chat: the rule is scoped to its path.
    await client(token).chat.completions.create({ model: 'o3-mini', messages: HI });
  });

  it('reads groups from a nested claim (Keycloak realm_access.roles)', async () => {
    const ml = await keycloak.mint({
      sub: 'kc-1',
      preferred_username: 'grace',
      realm_access: { roles: ['offline_access', 'ml-team'] },
    });
    const res = await client(ml).chat.completions.create({ model: 'o3-mini', messages: HI });
    expect(res.model).to.equal('o3-mini');

    const other = await keycloak.mint({
      sub: 'kc-2',
      preferred_username: 'hal',
      realm_access: { roles: ['sales'] },
    });
    const err = await failure(
      client(other).chat.completions.create({ model: 'o3-mini', messages: HI }),
    );
    expect((err as InstanceType<typeof OpenAI.PermissionDeniedError>).status).to.equal(403);
    const audit = stack
      .logLines()
      .filter((l) => l['audit'] === 'decision' && l['subject'] === 'kc-2');
    expect(audit.at(-1)).to.include({ user: 'hal', rule: 'nobody-else-reasoning' });
    expect(audit.at(-1)!['groups']).to.deep.equal(['sales']);
  });

  it('lets a shadow rule through, logging and counting the would-be denial', async () => {
    const res = await client(await salesUser()).chat.completions.create({
      model: 'gpt-4.1',
      messages: HI,
    });
    expect(res.model).to.equal('gpt-4.1');
    const line = stack
      .logLines()
      .filter((l) => l['audit'] === 'decision' && l['model'] === 'gpt-4.1')
      .at(-1);
    expect(line).to.include({ decision: 'allow', status: 200 });
    expect(line!['shadowDenied']).to.deep.equal({
      rule: 'trial-block-gpt41',
      reason: 'model_not_allowed',
    });

    const metrics = await scrapeMetrics(stack.ready.metrics);
    expect(
      metricValue(metrics, 'tollgate_policy_shadow_denials_total', { rule: 'trial-block-gpt41' }),
    ).to.equal(1);
    // Requests the shadow rule does not match carry no shadow field.
    const plain = stack
      .logLines()
      .filter((l) => l['audit'] === 'decision' && l['model'] === 'gpt-4o-mini');
    expect(plain.at(-1)).not.to.have.property('shadowDenied');
  });

  it('sends a tenant with its own credentials upstream with its key, project and organization', async () => {
    const marketing = await keycloak.mint({
      sub: 'kc-m',
      preferred_username: 'mia',
      tenant: 'marketing',
    });
    await client(marketing).chat.completions.create({ model: 'gpt-4o-mini', messages: HI });
    const m = upstream.received.at(-1)!.headers;
    expect(m['authorization']).to.equal(`Bearer ${MARKETING_KEY}`);
    expect(m['openai-project']).to.equal('proj_marketing');
    expect(m['openai-organization']).to.equal('org-marketing');

    const finance = await keycloak.mint({
      sub: 'kc-f',
      preferred_username: 'fay',
      tenant: 'finance',
    });
    await client(finance).chat.completions.create({ model: 'gpt-4o-mini', messages: HI });
    const f = upstream.received.at(-1)!.headers;
    expect(f['authorization']).to.equal(`Bearer ${DEFAULT_KEY}`);
    expect(f).not.to.have.property('openai-project');
  });

  it('answers a body that is not JSON with 400 invalid_body', async () => {
    const res = await post('/v1/chat/completions', await mlUser(), '{"model": "gpt-4o-mini", ');
    await expectEnvelope(res, 400, 'invalid_body', {
      type: 'invalid_request_error',
      code: 'invalid_body',
    });
  });

  it('accepts a body just under server.maxRequestBytes (1 MiB here)', async () => {
    const content = 'x'.repeat(1000 * 1000);
    const res = await client(await mlUser()).chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content }],
    });
    expect(res.choices).to.have.length(1);
  });

  it('answers a body over server.maxRequestBytes with Envoy’s 413 in the OpenAI envelope', async () => {
    const token = await mlUser();
    const big = JSON.stringify({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'x'.repeat(1100 * 1000) }],
    });
    const res = await post('/v1/chat/completions', token, big);
    const body = await expectEnvelope(res, 413, 'body_too_large', {
      type: 'invalid_request_error',
      code: 'request_too_large',
    });
    expect(body.error.message).to.contain('1048576 bytes');

    const err = await failure(
      client(token).chat.completions.create({
        model: 'gpt-4o-mini',
        messages: JSON.parse(big).messages,
      }),
    );
    expect(err).to.be.instanceOf(OpenAI.APIError);
    expect((err as InstanceType<typeof OpenAI.APIError>).status).to.equal(413);
    expect((err as InstanceType<typeof OpenAI.APIError>).code).to.equal('request_too_large');
  });
});

describe('e2e: Envoy’s own reply when Tollgate is unreachable', function () {
  this.timeout(60000);
  let envoy: RunningEnvoy;
  let upstream: DevUpstream;

  /** A port nothing listens on: bind, read it, close. */
  async function closedPort(): Promise<number> {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const { port } = server.address() as AddressInfo;
    await new Promise<void>((r) => server.close(() => r()));
    return port;
  }

  before(async () => {
    upstream = await DevUpstream.start();
    envoy = await startEnvoy({ grpcPort: await closedPort(), upstreamUrl: upstream.url });
  });

  after(async () => {
    await envoy?.stop();
    await upstream?.close();
  });

  it('answers 503 with the envelope and x-tollgate-reason internal_error, never reaching upstream', async () => {
    const res = await fetch(`${envoy.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer whatever' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: HI }),
    });
    await expectEnvelope(res, 503, 'internal_error', {
      type: 'server_error',
      code: 'service_unavailable',
    });
    expect(res.headers.get('retry-after')).to.equal('1');
    expect(upstream.received).to.have.length(0);
  });
});
