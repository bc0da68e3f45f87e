/**
 * The production path to OpenAI over real TLS: envoy/production.yaml, run by the pinned Envoy in
 * front of a real `tollgate serve`, reaches an HTTPS upstream that impersonates api.openai.com
 * with a certificate from a test CA made at test time (test/helpers/pki.ts).
 *
 * What the test changes in the production bootstrap, and only that: the `openai` cluster is
 * STATIC at 127.0.0.1 (Envoy "resolves" api.openai.com to loopback) and its `trusted_ca` is the
 * test CA instead of the system bundle; `sni`, `match_typed_subject_alt_names`, the TLS
 * parameters and the HTTP protocol options are the production ones. Listeners and admin move
 * to free loopback ports, the `tollgate` endpoint to the sidecar's port.
 *
 * A good certificate carries the traffic (SNI api.openai.com; ALPN http/1.1, which Envoy offers
 * for the cluster's explicit HTTP/1.1 although the server would prefer h2); a certificate from another CA, an expired one and
 * one for another name are refused during the handshake, so the upstream never receives an
 * HTTP request and so never the upstream API key.
 */
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { DevIssuer } from '../../src/dev/issuer.js';
import { DevUpstream } from '../../src/dev/upstream.js';
import { productionEnvoy } from '../helpers/deploy.js';
import { AUDIENCE, baseConfig } from '../helpers/e2e.js';
import { TestPki, type IssueOptions } from '../helpers/pki.js';
import { onStopAll, stopAllAfter } from '../helpers/processes.js';
import { startProductionEnvoy, type ProductionEnvoy } from '../helpers/production-envoy.js';
import { startServe } from '../helpers/serve.js';

const HOST = 'api.openai.com';
const UPSTREAM_KEY = 'sk-tls-e2e-7c41d0-upstream-key';
/** The fixture prefers h2; Envoy must get what the cluster says (explicit HTTP/1.1). */
const OFFERED_ALPN = ['h2', 'http/1.1'];

interface TlsConfig {
  sni?: string;
  common_tls_context: {
    alpn_protocols?: string[];
    validation_context: {
      trusted_ca: { filename: string };
      match_typed_subject_alt_names: { matcher: { exact: string } }[];
    };
  };
}

describe('e2e: envoy/production.yaml to an HTTPS upstream (test CA, api.openai.com on loopback)', function () {
  this.timeout(90_000);
  stopAllAfter();
  let pki: TestPki;
  let dir: string;
  let edge: ProductionEnvoy;
  let issuer: DevIssuer;
  let port: number;
  let token: string;
  let upstream: DevUpstream | undefined;
  let productionTls: TlsConfig;

  before(async () => {
    pki = TestPki.create();
    dir = mkdtempSync(join(tmpdir(), 'tollgate-upstream-tls-'));
    issuer = await DevIssuer.start({ audience: AUDIENCE });
    onStopAll(() => issuer.close());
    const serve = await startServe({
      config: baseConfig({ issuer }),
      env: { TEST_UPSTREAM_KEY: UPSTREAM_KEY },
    });
    onStopAll(() => serve.stop());
    // A port the fixtures take in turn: one Envoy, the same cluster, a new server each case.
    const first = await DevUpstream.start({ tls: { ...pki.issue({ names: [HOST] }), alpn: OFFERED_ALPN } });
    port = Number(new URL(first.url).port);
    await first.close();

    const cfg = productionEnvoy();
    cfg.endpoint('tollgate').port_value = Number(serve.grpc.split(':').pop());
    const openai = cfg.cluster('openai');
    productionTls = structuredClone((openai.transport_socket as { typed_config: TlsConfig }).typed_config);
    openai.type = 'STATIC';
    Object.assign(cfg.endpoint('openai'), { address: '127.0.0.1', port_value: port });
    const tls = (openai.transport_socket as { typed_config: TlsConfig }).typed_config;
    tls.common_tls_context.validation_context.trusted_ca = { filename: pki.ca.certFile };
    edge = await startProductionEnvoy(cfg, dir);
    token = await issuer.mint({ sub: 'u-tls', email: 'tls@example.com' });
  });

  afterEach(async () => {
    await upstream?.close();
    upstream = undefined;
  });

  after(() => {
    pki.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A fresh fixture on the cluster's port, serving a certificate made per `cert`. */
  async function serveWith(cert: IssueOptions): Promise<DevUpstream> {
    const pair = pki.issue(cert);
    upstream = await DevUpstream.start({ port, tls: { cert: pair.cert, key: pair.key, alpn: OFFERED_ALPN } });
    return upstream;
  }

  const client = () => new OpenAI({ baseURL: `${edge.ingressUrl}/v1`, apiKey: token, maxRetries: 0 });

  async function sslStats(): Promise<Record<string, number>> {
    const text = await (await fetch(`${edge.adminUrl}/stats?filter=^cluster\\.openai\\.ssl\\.`)).text();
    const out: Record<string, number> = {};
    for (const line of text.split('\n')) {
      const m = /^cluster\.openai\.ssl\.([\w.]+): (\d+)$/.exec(line.trim());
      if (m) out[m[1]!] = Number(m[2]);
    }
    return out;
  }

  it('keeps the production SNI, SAN match and protocol: only the address and the CA change', () => {
    expect(productionTls.sni).to.equal(HOST);
    expect(productionTls.common_tls_context.validation_context.match_typed_subject_alt_names[0]?.matcher.exact).to.equal(HOST);
    // No alpn_protocols: Envoy derives ALPN from the cluster's explicit HTTP/1.1.
    expect(productionTls.common_tls_context.alpn_protocols).to.equal(undefined);
  });

  it('carries traffic to a certificate for the name from the trusted CA: SNI sent, ALPN http/1.1, the upstream key', async () => {
    const fixture = await serveWith({ names: [HOST] });
    const reply = await client().chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(reply.choices[0]?.message.content).to.be.a('string');
    expect(fixture.handshakes.length).to.be.above(0);
    for (const h of fixture.handshakes) {
      expect(h).to.deep.equal({ servername: HOST, alpnProtocol: 'http/1.1' });
    }
    const seen = fixture.requests('/v1/chat/completions');
    expect(seen).to.have.length(1);
    expect(seen[0]?.headers).to.include({ host: HOST, authorization: `Bearer ${UPSTREAM_KEY}` });
  });

  const refused: { what: string; cert: IssueOptions; stat: string }[] = [
    { what: 'a certificate from another CA', cert: { names: [HOST], untrustedCa: true }, stat: 'fail_verify_error' },
    { what: 'an expired certificate', cert: { names: [HOST], expired: true }, stat: 'fail_verify_error' },
    { what: 'a certificate for another name', cert: { names: [`${HOST}.evil.example`, 'evil.example'] }, stat: 'fail_verify_san' },
  ];
  for (const { what, cert, stat } of refused) {
    it(`refuses ${what} in the handshake: 503, and the upstream never gets a request or the key`, async () => {
      const before = (await sslStats())[stat] ?? 0;
      const fixture = await serveWith(cert);
      const err = await client()
        .chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(err).to.be.instanceOf(OpenAI.APIError);
      expect((err as InstanceType<typeof OpenAI.APIError>).status).to.equal(503);
      // Envoy reached the fixture, sent SNI, got its certificate and aborted the handshake.
      expect(fixture.handshakes.length).to.be.above(0);
      for (const h of fixture.handshakes) {
        expect(h.servername).to.equal(HOST);
        expect(h.error, JSON.stringify(h)).to.be.a('string');
      }
      expect(fixture.received).to.deep.equal([]);
      expect((await sslStats())[stat]).to.be.above(before);
    });
  }
});
