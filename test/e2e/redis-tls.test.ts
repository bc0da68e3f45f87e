/**
 * Counters over TLS to Redis, end to end (issue 13, item 5): a real redis-server with a TLS-only
 * port, a password and a certificate from a test CA made at test time (test/helpers/pki.ts);
 * `tollgate serve` with `store.redis.url: rediss://…` and `store.redis.tls.ca` naming that CA;
 * real Envoy in front and the openai SDK as the client.
 * - Through TLS, the rate-limit counter and the budget are exact (the budget holds what the
 *   upstream reported), and the sidecar's connection is the one on the TLS port.
 * - With another CA configured, the handshake fails: the sidecar says why at start-up, answers
 *   with its `onUnavailable` policy (`closed`: 503 `store_unavailable`), and Redis never sees a
 *   command from it — no AUTH, so the password never left the sidecar.
 */
import { expect } from 'chai';
import OpenAI from 'openai';
import { Redis } from 'ioredis';
import { budgetKey } from '../../src/budgets/planner.js';
import { periodWindow } from '../../src/budgets/period.js';
import { bucketKey } from '../../src/limits/rate-limit.js';
import type { RunningEnvoy } from '../../src/stack/envoy.js';
import { baseConfig, withDevs } from '../helpers/e2e.js';
import { TestPki } from '../helpers/pki.js';
import { RedisServer } from '../helpers/redis-server.js';
import { startEnvoyFor, startServe, type ServeProcess } from '../helpers/serve.js';

const PASSWORD = 'redis-e2e-pw-90a7f3';
const PREFIX = 'redis-tls:';
const TENANT = 'acme';

describe('e2e: counters over TLS to Redis (rediss:// with a private CA)', function () {
  this.timeout(90_000);
  const devs = withDevs();
  let pki: TestPki;
  let redis: RedisServer;
  let raw: Redis;
  let serve: ServeProcess | undefined;
  let envoy: { envoy: RunningEnvoy } | undefined;

  before(async () => {
    pki = TestPki.create();
    const pair = pki.issue({ names: ['localhost'] });
    redis = await RedisServer.start({ password: PASSWORD, tls: { certFile: pair.certFile, keyFile: pair.keyFile, caFile: pki.ca.certFile } });
    // The test reads through the plain port; the sidecar gets only the TLS one.
    raw = new Redis({ port: redis.port, host: '127.0.0.1', password: PASSWORD });
  });

  afterEach(async () => {
    await envoy?.envoy.stop();
    await serve?.stop();
    envoy = undefined;
    serve = undefined;
  });

  after(async () => {
    raw?.disconnect();
    await redis?.stop();
    pki?.close();
  });

  function config(caFile: string): string {
    return baseConfig({
      issuer: devs.issuer,
      extra: `rateLimits:
  - { name: admissions, match: { path: /v1/chat/completions }, requestsPerUnit: 1000, unit: hour, key: tenant }
tokenBudgets:
  - { tenant: ${TENANT}, maxTokens: 1000000, period: day }
store:
  redis:
    url: rediss://:${PASSWORD}@localhost:${redis.tlsPort}
    tls: { ca: { file: ${caFile} } }
    timeoutMs: 2000
    onUnavailable: closed
    keyPrefix: "${PREFIX}"
`,
    });
  }

  async function start(caFile: string): Promise<OpenAI> {
    const yaml = config(caFile);
    serve = await startServe({ config: yaml, env: { TEST_UPSTREAM_KEY: 'sk-test' } });
    envoy = await startEnvoyFor(yaml, Number(serve.grpc.split(':').pop()), devs.upstream.url);
    const token = await devs.issuer.mint({ sub: 'ann', tenant_id: TENANT });
    return new OpenAI({ baseURL: `${envoy.envoy.url}/v1`, apiKey: token, maxRetries: 0, timeout: 30_000 });
  }

  const tlsClients = async (): Promise<string[]> =>
    ((await raw.call('CLIENT', 'LIST')) as string).split('\n').filter((l) => l.includes(`laddr=127.0.0.1:${redis.tlsPort} `));

  it('keeps the rate-limit counter and the budget exact through TLS', async () => {
    const client = await start(pki.ca.certFile);
    const before = devs.upstream.reported.length;
    const messages = [{ role: 'user' as const, content: 'hello over tls' }];
    for (let i = 0; i < 4; i++) await client.chat.completions.create({ model: 'gpt-4o-mini', messages, max_tokens: 30 });
    for (let i = 0; i < 4; i++) {
      const chunks = [];
      for await (const chunk of await client.chat.completions.create({ model: 'gpt-4o-mini', messages, stream: true })) chunks.push(chunk);
      expect(chunks.length).to.be.above(1);
    }
    // Settlements follow the responses: wait for all eight.
    const deadline = Date.now() + 10_000;
    const settled = () => (serve?.logLines() ?? []).filter((l) => l['audit'] === 'usage' && l['settled'] === true);
    while (settled().length < 8 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));

    expect(settled()).to.have.length(8);
    expect(await raw.get(PREFIX + bucketKey('admissions', TENANT))).to.equal('8');
    const key = PREFIX + budgetKey({ tenant: TENANT, maxTokens: 1, period: 'day', timeZone: 'UTC' }, periodWindow('day', 'UTC', Date.now()));
    const [used, reserved] = await raw.hmget(key, 'used', 'reserved');
    const upstream = devs.upstream.reported.slice(before).reduce((sum, r) => sum + r.totalTokens, 0);
    expect({ used: Number(used), reserved: Number(reserved ?? 0) }).to.deep.equal({ used: upstream, reserved: 0 });
    // The sidecar's connection is the one on the TLS-only port.
    expect(await tlsClients()).to.have.length(1);
    expect(serve?.output()).not.to.contain('Redis not reachable');
  });

  it('refuses a server its CA did not sign: a clear log line, the onUnavailable answer, no command (no password) sent', async () => {
    await raw.call('CONFIG', 'RESETSTAT');
    const client = await start(pki.untrustedCa.certFile);

    const line = serve?.logLines().find((l) => l['msg'] === 'Redis not reachable at start-up');
    expect(line, serve?.output()).to.not.equal(undefined);
    expect(line).to.include({ store: 'redis', onUnavailable: 'closed' });
    // Node's words for a chain it cannot trust (redis-server sends its CA along with its certificate).
    expect(JSON.stringify(line?.['err'])).to.match(/self-signed certificate in certificate chain|unable to get local issuer certificate/);

    const err = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).to.be.instanceOf(OpenAI.APIError);
    expect((err as InstanceType<typeof OpenAI.APIError>).status).to.equal(503);
    expect((err as InstanceType<typeof OpenAI.APIError>).headers?.get('x-tollgate-reason')).to.equal('store_unavailable');

    // Redis counted no command since the reset but the test's own: no AUTH, HELLO or script.
    const stats = (await raw.info('commandstats')).split('\n').filter((l) => l.startsWith('cmdstat_'));
    expect(stats.map((l) => l.split(':')[0])).to.deep.equal(['cmdstat_config|resetstat']);
    expect(await tlsClients()).to.deep.equal([]);
    expect(serve?.output()).not.to.contain(PASSWORD);
  });
});
