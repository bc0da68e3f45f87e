/**
 * A token from a real, certified OpenID Provider implementation (the `oidc-provider` package),
 * obtained with the client-credentials grant as a JWT access token, goes through real Envoy.
 * Tollgate discovers the JWKS from the issuer (no jwksUri in the config).
 */
import { generateKeyPairSync } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import OpenAI from 'openai';
import Provider from 'oidc-provider';
import { DevUpstream } from '../../src/dev/upstream.js';
import { startStack, type StackProcess } from '../helpers/stack.js';

const RESOURCE = 'https://gateway.tollgate.test';

describe('e2e: a JWT access token from oidc-provider (client credentials)', function () {
  this.timeout(60000);
  let server: Server;
  let issuer: string;
  let upstream: DevUpstream;
  let stack: StackProcess;

  before(async () => {
    server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const provider = new Provider(issuer, {
      clients: [
        {
          client_id: 'batch-job',
          client_secret: 'batch-job-secret-value-0123456789',
          grant_types: ['client_credentials'],
          redirect_uris: [],
          response_types: [],
          scope: 'models',
        },
      ],
      jwks: { keys: [{ ...privateKey.export({ format: 'jwk' }), kid: 'op-key-1', alg: 'RS256', use: 'sig' }] },
      scopes: ['models'],
      features: {
        devInteractions: { enabled: false },
        clientCredentials: { enabled: true },
        resourceIndicators: {
          enabled: true,
          defaultResource: () => RESOURCE,
          useGrantedResource: () => true,
          getResourceServerInfo: () => ({ scope: 'models', audience: RESOURCE, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } }),
        },
      },
      ttl: { ClientCredentials: 600 },
    });
    server.on('request', provider.callback());
    upstream = await DevUpstream.start();
    stack = await startStack({
      upstream: upstream.url,
      config: `
server: { grpc: 127.0.0.1:0, metrics: 127.0.0.1:0 }
authentication:
  - provider:
      name: oidc-provider
      issuer: ${issuer}
      clientId: ${RESOURCE}
      claims: { user: client_id }
upstream:
  apiKey: { env: TEST_UPSTREAM_KEY }
identityHeaders:
  x-user-id: sub
  x-client-id: client_id
`,
      env: { TEST_UPSTREAM_KEY: 'sk-upstream' },
    });
  });

  after(async () => {
    await stack?.stop();
    await upstream?.close();
    server?.closeAllConnections();
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  });

  it('is verified via discovery and reaches the upstream as the client', async () => {
    const res = await fetch(`${issuer}/token`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from('batch-job:batch-job-secret-value-0123456789').toString('base64')}`,
      },
      body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'models', resource: RESOURCE }),
    });
    expect(res.status).to.equal(200);
    const { access_token: token } = (await res.json()) as { access_token: string };
    expect(token.split('.')).to.have.length(3);

    const client = new OpenAI({ baseURL: `${stack.ready.envoy}/v1`, apiKey: token, maxRetries: 0 });
    const completion = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
    expect(completion.usage?.total_tokens).to.be.greaterThan(0);
    const h = upstream.received.at(-1)!.headers;
    expect(h['x-user-id']).to.equal('batch-job');
    expect(h['x-client-id']).to.equal('batch-job');
    expect(h['authorization']).to.equal('Bearer sk-upstream');
  });
});
