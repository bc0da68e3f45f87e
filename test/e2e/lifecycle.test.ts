/**
 * The sidecar's life cycle, end to end: `tollgate serve` as its own process (so a SIGTERM stops
 * it and not Envoy), real Envoy in front, a dev issuer that can be slow or down, and the openai
 * SDK as the client.
 * - grpc.health.v1 answers SERVING only once every provider's keys were fetched;
 * - on SIGTERM health turns NOT_SERVING at once, a stream in flight runs to its end and is
 *   charged, a Check in flight still gets its answer and its request is charged too, and the
 *   process exits within the grace period.
 */
import { expect } from 'chai';
import type { Client, ClientReadableStream } from '@grpc/grpc-js';
import OpenAI from 'openai';
import { DevIssuer } from '../../src/dev/issuer.js';
import { DevUpstream } from '../../src/dev/upstream.js';
import { SERVICE_NAMES } from '../../src/edge/protos.js';
import type { RunningEnvoy } from '../../src/stack/envoy.js';
import { freePort } from '../../src/stack/ports.js';
import { healthClient, unary } from '../integration/grpc/clients.js';
import { eventually, startEnvoyFor, startServe, type ServeProcess } from '../helpers/serve.js';

const SERVING = 1;
const NOT_SERVING = 2;
const GRACE_SECONDS = 10;

function configYaml(issuer: DevIssuer, grpc: string): string {
  return `
server: { grpc: "${grpc}", metrics: false, shutdownGraceSeconds: ${GRACE_SECONDS} }
authentication:
  - provider:
      name: main-idp
      issuer: ${issuer.url}
      clientId: tollgate-test
      jwksUri: ${issuer.url}/jwks.json
      jwksTimeoutMs: 10000
      jwksCooldownSeconds: 0
upstream:
  apiKey: { env: TEST_UPSTREAM_KEY }
tokenBudgets:
  - tenant: lifecycle
    maxTokens: 1000000
    period: month
`;
}

/** Health.Check as a status number, or `unavailable` when nothing answers on the port yet. */
async function health(client: Client, service = ''): Promise<number | 'unavailable'> {
  try {
    return (await unary<{ status: number }>(client, 'Check', { service })).status;
  } catch {
    return 'unavailable';
  }
}

/** Health.Watch updates as they arrive. */
function watch(client: Client): {
  statuses: number[];
  stream: ClientReadableStream<{ status: number }>;
} {
  const fn = (
    client as unknown as Record<string, (req: unknown) => ClientReadableStream<{ status: number }>>
  )['Watch']!;
  const stream = fn.call(client, { service: '' });
  const statuses: number[] = [];
  stream.on('data', (m: { status: number }) => statuses.push(m.status));
  stream.on('error', () => undefined);
  return { statuses, stream };
}

describe('e2e: sidecar life cycle', function () {
  this.timeout(120000);
  let issuer: DevIssuer;
  let upstream: DevUpstream;
  let serve: ServeProcess | undefined;
  let envoy: { envoy: RunningEnvoy; lines: string[] } | undefined;
  const clients: Client[] = [];

  before(async () => {
    issuer = await DevIssuer.start({ audience: 'tollgate-test' });
    upstream = await DevUpstream.start();
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await envoy?.envoy.stop();
    await serve?.stop('SIGKILL');
    envoy = undefined;
    serve = undefined;
    issuer.setDelay(0);
    issuer.setDown(false);
  });

  after(async () => {
    await Promise.all([issuer?.close(), upstream?.close()]);
  });

  it('answers SERVING only after the keys of a slow identity provider arrived', async () => {
    const DELAY = 1500;
    issuer.setDelay(DELAY);
    const port = await freePort();
    const spawned = Date.now();
    serve = await startServe({
      config: configYaml(issuer, `127.0.0.1:${port}`),
      env: { TEST_UPSTREAM_KEY: 'k' },
      waitStarted: false,
    });
    const client = healthClient(`127.0.0.1:${port}`);
    clients.push(client);
    const seen: (number | 'unavailable')[] = [];
    const servingAt = await eventually(
      async () => {
        const status = await health(client);
        seen.push(status);
        return status === SERVING ? Date.now() : undefined;
      },
      'SERVING',
      60_000,
    );
    expect(issuer.requests.jwks).to.be.at.least(1);
    expect(servingAt - spawned).to.be.at.least(DELAY);
    expect(seen.slice(0, -1)).not.to.include(SERVING);
    expect(await health(client, SERVICE_NAMES.authorization)).to.equal(SERVING);
    expect(await health(client, SERVICE_NAMES.externalProcessor)).to.equal(SERVING);
  });

  it('stays NOT_SERVING while the identity provider is down, then SERVING once keys are fetched', async () => {
    issuer.setDown(true);
    serve = await startServe({
      config: configYaml(issuer, '127.0.0.1:0'),
      env: { TEST_UPSTREAM_KEY: 'k' },
    });
    const client = healthClient(serve.grpc);
    clients.push(client);
    expect(await health(client)).to.equal(NOT_SERVING);
    expect(await health(client, SERVICE_NAMES.authorization)).to.equal(NOT_SERVING);
    issuer.setDown(false);
    await eventually(
      async () => ((await health(client)) === SERVING ? true : undefined),
      'SERVING after the IdP came back',
    );
  });

  it('on SIGTERM: NOT_SERVING at once, a stream and a Check in flight finish and are charged, exit within the grace period', async () => {
    serve = await startServe({
      config: configYaml(issuer, '127.0.0.1:0'),
      env: { TEST_UPSTREAM_KEY: 'sk-lifecycle' },
    });
    const sidecar = serve;
    envoy = await startEnvoyFor(
      configYaml(issuer, sidecar.grpc),
      Number(sidecar.grpc.split(':').pop()),
      upstream.url,
    );
    const client = healthClient(sidecar.grpc);
    clients.push(client);
    expect(await health(client)).to.equal(SERVING);
    const watcher = watch(client);
    await eventually(
      () => (watcher.statuses[0] === SERVING ? true : undefined),
      'the first Watch update',
    );

    const openai = (token: string) =>
      new OpenAI({
        baseURL: `${envoy!.envoy.url}/v1`,
        apiKey: token,
        maxRetries: 0,
        timeout: 30000,
      });
    const streamer = await issuer.mint({ sub: 'streamer', tenant_id: 'lifecycle' });
    const stream = await openai(streamer).chat.completions.create(
      {
        model: 'gpt-4o-mini',
        messages: [{ role: 'user', content: 'tell me a long story' }],
        stream: true,
      },
      {
        headers: {
          'x-dev-chunks': '8',
          'x-dev-chunk-delay-ms': '250',
          'x-dev-prompt-tokens': '17',
          'x-dev-completion-tokens': '29',
        },
      },
    );
    const iterator = stream[Symbol.asyncIterator]();
    const first = await iterator.next();
    expect(first.done).to.equal(false);

    // A Check in flight: a token signed by a new key sends Tollgate to the (slow) JWKS.
    await issuer.rotate();
    issuer.setDelay(1500);
    const jwksBefore = issuer.requests.jwks;
    const latecomer = await issuer.mint({ sub: 'latecomer', tenant_id: 'lifecycle' });
    // Settled into a value at once, so a failure is reported by the assertion below.
    const late = openai(latecomer)
      .chat.completions.create(
        { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] },
        { headers: { 'x-dev-prompt-tokens': '3', 'x-dev-completion-tokens': '4' } },
      )
      .then(
        (completion) => completion.choices[0]?.message.content,
        (err: unknown) => err,
      );
    await eventually(
      () => (issuer.requests.jwks > jwksBefore ? true : undefined),
      'the JWKS refetch to start',
    );

    const signalled = Date.now();
    sidecar.proc.proc.kill('SIGTERM');
    await eventually(
      () => (watcher.statuses.includes(NOT_SERVING) ? true : undefined),
      'NOT_SERVING on Watch',
      2000,
    );

    let chunks = 1;
    for (let next = await iterator.next(); next.done !== true; next = await iterator.next())
      chunks += 1;
    expect(chunks).to.be.at.least(8);
    expect(await late).to.be.a('string').and.not.empty;

    const exit = await sidecar.proc.waitForExit(GRACE_SECONDS * 1000 + 5000);
    expect(exit.code).to.equal(0);
    expect(Date.now() - signalled).to.be.lessThan(GRACE_SECONDS * 1000 + 1500);

    const lines = sidecar.logLines();
    const usage = (subject: string) =>
      lines.find((l) => l['audit'] === 'usage' && l['subject'] === subject);
    expect(usage('streamer')).to.include({
      inputTokens: 17,
      outputTokens: 29,
      source: 'provider',
      aborted: false,
      settled: true,
      charged: 46,
    });
    expect(usage('latecomer')).to.include({
      inputTokens: 3,
      outputTokens: 4,
      settled: true,
      charged: 7,
    });
    const at = (pred: (l: Record<string, unknown>) => boolean) => lines.findIndex(pred);
    const shuttingDown = at((l) => l['msg'] === 'shutting down');
    const stopped = at((l) => l['msg'] === 'stopped');
    expect(shuttingDown).to.be.greaterThan(-1);
    expect(stopped).to.be.greaterThan(
      at((l) => l['subject'] === 'streamer' && l['audit'] === 'usage'),
    );
    expect(stopped).to.be.greaterThan(
      at((l) => l['subject'] === 'latecomer' && l['audit'] === 'usage'),
    );
  });
});
