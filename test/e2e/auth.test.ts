/**
 * Walking skeleton end to end: real Envoy + `tollgate stack` + dev issuers + dev upstream, with
 * the official openai SDK as the client.
 */
import { expect } from 'chai';
import OpenAI from 'openai';
import { DevIssuer } from '../../src/dev/issuer.js';
import { DevUpstream } from '../../src/dev/upstream.js';
import * as bad from '../helpers/tokens.js';
import { startStack, type StackProcess } from '../helpers/stack.js';

const UPSTREAM_KEY = 'sk-upstream-test-key';

function configYaml(rsa: DevIssuer, ec: DevIssuer): string {
  return `
server: { grpc: 127.0.0.1:0, metrics: 127.0.0.1:0 }
authentication:
  - provider:
      name: main-idp
      issuer: ${rsa.url}
      clientId: tollgate-test
      jwksCooldownSeconds: 0
  - provider:
      name: ec-idp
      issuer: ${ec.url}
      audiences: [tollgate-test]
      jwksUri: ${ec.url}/jwks.json
      algorithms: [ES256]
upstream:
  apiKey: { env: TEST_UPSTREAM_KEY }
identityHeaders:
  x-user-id: sub
  x-user-email: email
  x-tenant-id: tenant_id
  x-user-groups: groups
`;
}

describe('e2e: OIDC-authenticated calls through real Envoy', function () {
  this.timeout(60000);
  let rsa: DevIssuer;
  let ec: DevIssuer;
  let stranger: DevIssuer;
  let upstream: DevUpstream;
  let stack: StackProcess;
  const claims = { sub: 'u-1', email: 'alice@myorg.com', groups: ['ml-team', 'eng'], tenant_id: 'marketing' };

  const client = (apiKey: string) =>
    new OpenAI({ baseURL: `${stack.ready.envoy}/v1`, apiKey, maxRetries: 0, timeout: 10000 });

  before(async () => {
    rsa = await DevIssuer.start({ audience: 'tollgate-test' });
    ec = await DevIssuer.start({ audience: 'tollgate-test', alg: 'ES256' });
    stranger = await DevIssuer.start({ audience: 'tollgate-test' });
    upstream = await DevUpstream.start();
    stack = await startStack({ config: configYaml(rsa, ec), upstream: upstream.url, env: { TEST_UPSTREAM_KEY: UPSTREAM_KEY } });
  });

  after(async () => {
    await stack?.stop();
    await Promise.all([rsa?.close(), ec?.close(), stranger?.close(), upstream?.close()]);
  });

  it('prints a ready line with real ports', () => {
    expect(stack.ready.envoy).to.match(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(stack.ready.grpc).to.match(/:\d+$/);
    expect(stack.ready.grpc).not.to.match(/:0$/);
    expect(stack.ready.metrics).to.match(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
  });

  it('lets a valid token through: the upstream sees the API key and identity headers, never the JWT', async () => {
    const token = await rsa.mint(claims);
    const before = upstream.received.length;
    const res = await client(token).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
    expect(res.choices[0]?.message.content).to.be.a('string').and.not.empty;
    const seen = upstream.received.slice(before);
    expect(seen).to.have.length(1);
    const h = seen[0]!.headers;
    expect(h['authorization']).to.equal(`Bearer ${UPSTREAM_KEY}`);
    expect(h['x-user-id']).to.equal('u-1');
    expect(h['x-user-email']).to.equal('alice@myorg.com');
    expect(h['x-tenant-id']).to.equal('marketing');
    expect(h['x-user-groups']).to.equal('ml-team,eng');
    expect(JSON.stringify(h)).not.to.contain(token);
    expect(JSON.stringify(h)).not.to.contain(token.split('.')[2]!);
  });

  it('streams through Envoy with the same identity', async () => {
    const token = await rsa.mint(claims);
    const stream = await client(token).chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
    });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    expect(text.length).to.be.greaterThan(0);
    const last = upstream.received.at(-1)!;
    expect(last.headers['authorization']).to.equal(`Bearer ${UPSTREAM_KEY}`);
    expect(JSON.parse(last.body).stream).to.equal(true);
  });

  it('replaces a client-sent identity header with the verified value', async () => {
    const token = await rsa.mint(claims);
    await client(token).chat.completions.create(
      { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] },
      { headers: { 'x-user-email': 'ceo@myorg.com', 'x-user-id': 'root', 'x-tenant-id': 'finance' } },
    );
    const h = upstream.received.at(-1)!.headers;
    expect(h['x-user-email']).to.equal('alice@myorg.com');
    expect(h['x-user-id']).to.equal('u-1');
    expect(h['x-tenant-id']).to.equal('marketing');
  });

  it('removes a client-sent identity header when the claim is absent', async () => {
    const token = await rsa.mint({ sub: 'u-2', email: 'bob@myorg.com' });
    await client(token).chat.completions.create(
      { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] },
      { headers: { 'x-tenant-id': 'finance', 'x-user-groups': 'admins' } },
    );
    const h = upstream.received.at(-1)!.headers;
    expect(h).not.to.have.property('x-tenant-id');
    expect(h).not.to.have.property('x-user-groups');
  });

  it('accepts a second issuer with ES256 keys', async () => {
    const token = await ec.mint({ sub: 'ec-user', email: 'carol@myorg.com' });
    const res = await client(token).embeddings.create({ model: 'text-embedding-3-small', input: 'hello' });
    expect(res.data).to.have.length(1);
    expect(upstream.received.at(-1)!.headers['x-user-email']).to.equal('carol@myorg.com');
  });

  it('accepts a token signed with a rotated key without restart', async () => {
    const kid = await rsa.rotate();
    const token = await rsa.mint({ ...claims, sub: 'rotated' }, { kid });
    await client(token).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
    expect(upstream.received.at(-1)!.headers['x-user-id']).to.equal('rotated');
  });

  const cases: [string, (() => Promise<string>) | null, string][] = [
    ['no token', null, 'missing_token'],
    ['alg none', () => bad.algNone(rsa, claims), 'alg_not_allowed'],
    ['HS256 signed with the RSA public key', () => bad.hsWithPublicKey(rsa, claims), 'alg_not_allowed'],
    ['a header-embedded jwk', () => bad.embeddedJwk(rsa, claims), 'alg_not_allowed'],
    ['an unknown kid', () => bad.unknownKid(rsa, claims), 'unknown_kid'],
    ['an expired token', () => bad.expired(rsa, claims), 'token_expired'],
    ['nbf in the future', () => bad.notYetValid(rsa, claims), 'token_not_yet_valid'],
    ['a wrong audience', () => bad.wrongAudience(rsa, claims), 'bad_audience'],
    ['an unknown issuer', () => stranger.mint(claims), 'unknown_issuer'],
    ['garbage', () => Promise.resolve('not-a-jwt-at-all'), 'malformed_token'],
    ['a 16 KB token', () => bad.oversized(rsa, claims), 'token_too_large'],
  ];

  for (const [name, make, reason] of cases) {
    it(`answers ${name} with 401, the OpenAI envelope and x-tollgate-reason ${reason}`, async () => {
      const token = make ? await make() : '';
      const direct = await fetch(`${stack.ready.envoy}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
      });
      expect(direct.status).to.equal(401);
      expect(direct.headers.get('content-type')).to.equal('application/json');
      expect(direct.headers.get('x-tollgate-reason')).to.equal(reason);
      expect(direct.headers.get('www-authenticate')).to.match(/^Bearer realm="tollgate", error="invalid_token"/);
      const body = (await direct.json()) as { error: Record<string, unknown> };
      expect(body.error).to.include({ type: 'invalid_request_error', code: 'invalid_api_key', param: null });
      expect(body.error['message']).to.be.a('string').and.not.empty;

      // The SDK sees the same thing as an AuthenticationError.
      if (token) {
        const err = await client(token)
          .chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })
          .then(() => undefined, (e: unknown) => e);
        expect(err).to.be.instanceOf(OpenAI.AuthenticationError);
        expect((err as InstanceType<typeof OpenAI.AuthenticationError>).code).to.equal('invalid_api_key');
      }
      // And the stack keeps serving.
      const ok = await client(await rsa.mint(claims)).models.list();
      expect(ok.data.length).to.be.greaterThan(0);
    });
  }
});
