/**
 * Both Envoy bootstraps load in the pinned Envoy (`--mode validate`), the production one keeps
 * the filters of the local stack the other end-to-end tests exercise, and, run for real with
 * only its addresses moved to this machine, it serves /ready to the kubelet and writes JSON
 * access logs carrying Tollgate's dynamic metadata and never the caller's token.
 */
import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { WHOAMI_PATH } from '../../src/check/whoami.js';
import { deny } from '../../src/domain/denials.js';
import type { Decision } from '../../src/domain/decision.js';
import type { InboundRequest } from '../../src/domain/request.js';
import { startGrpcServer } from '../../src/server/grpc.js';
import { renderBootstrap } from '../../src/stack/bootstrap.js';
import { findEnvoyBinary } from '../../src/stack/envoy.js';
import { waitUntil } from '../../src/stack/ports.js';
import { EnvoyConfig, productionEnvoy, readRepoFile, ROOT, run } from '../helpers/deploy.js';
import { startRecordingUpstream } from '../helpers/envoy.js';
import { onStopAll, stopAllAfter, type Spawned } from '../helpers/processes.js';
import { deploymentArgs, startProductionEnvoy } from '../helpers/production-envoy.js';

const policy = parseConfig(readRepoFile('k8s/base/tollgate.yaml'));
const WHOAMI_BODY = JSON.stringify({ identity: { user: 'alice@example.com' }, models: ['gpt-4o-mini'] });
const identityHeaders = Object.keys(policy.identityHeaders);

function validate(args: readonly string[]): string {
  const res = run(findEnvoyBinary(), ['--mode', 'validate', ...args]);
  expect(res.status, res.stderr + res.stdout).to.equal(0);
  return res.stderr + res.stdout;
}

describe('Envoy bootstraps', function () {
  this.timeout(60_000);
  let dir: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tollgate-envoy-prod-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('validates envoy/production.yaml with the Deployment args, free of deprecated fields (no DNS needed)', () => {
    const out = validate(deploymentArgs(join(ROOT, 'envoy', 'production.yaml')));
    expect(out).to.include('OK');
    expect(out).to.not.match(/deprecated/i);
  });

  it('validates the rendered local bootstrap, plain and TLS upstream', () => {
    for (const upstreamUrl of ['http://127.0.0.1:8000', 'https://api.openai.com']) {
      const file = join(dir, 'local.yaml');
      writeFileSync(file, renderBootstrap({ grpcPort: 9001, upstreamUrl, identityHeaders }));
      expect(validate(['-c', file]), upstreamUrl).to.include('OK');
    }
  });

  it('keeps the filters, header removal and local replies of envoy/local.yaml', () => {
    const local = EnvoyConfig.parse(
      renderBootstrap({ grpcPort: 9001, upstreamUrl: 'https://api.openai.com', identityHeaders }),
    );
    const prod = productionEnvoy();
    const pick = (c: EnvoyConfig) => {
      const hcm = c.hcm('ingress');
      const route = c.routes('ingress')[0]!;
      return {
        http_filters: hcm.http_filters,
        early_header_mutation_extensions: hcm.early_header_mutation_extensions,
        local_reply_config: hcm.local_reply_config,
        canonical_paths: {
          use_remote_address: hcm.use_remote_address,
          normalize_path: hcm.normalize_path,
          merge_slashes: hcm.merge_slashes,
          path_with_escaped_slashes_action: hcm.path_with_escaped_slashes_action,
        },
        response_headers_to_add: route.response_headers_to_add,
        route_timeouts: { timeout: route.route.timeout, idle_timeout: route.route.idle_timeout },
        request_headers_to_remove: route.request_headers_to_remove,
        tollgate_protocol: c.cluster('tollgate').typed_extension_protocol_options,
      };
    };
    const expected = pick(local);
    // On a difference, paste the expected YAML into envoy/production.yaml.
    expect(
      pick(prod),
      `envoy/production.yaml drifted from local.yaml; expected:\n${stringify(expected)}`,
    ).to.deep.equal(expected);
    expect(prod.routes('ingress')[0]?.route.host_rewrite_literal).to.equal('api.openai.com');
  });

  it('verifies OpenAI with SNI and the system trust bundle', () => {
    const tls = productionEnvoy().cluster('openai').transport_socket;
    expect(tls).to.deep.nested.include({
      'typed_config.sni': 'api.openai.com',
      'typed_config.common_tls_context.validation_context.trusted_ca.filename':
        '/etc/ssl/certs/ca-certificates.crt',
    });
    expect(tls).to.have.nested.property(
      'typed_config.common_tls_context.validation_context.match_typed_subject_alt_names[0].matcher.exact',
      'api.openai.com',
    );
  });

  describe('running, with its addresses moved to this machine', () => {
    stopAllAfter();
    const token = 'tok-e2e-1f2a9c-never-logged';
    let probeUrl: string;
    let ingressUrl: string;
    let envoy: Spawned;
    let upstream: Awaited<ReturnType<typeof startRecordingUpstream>>;

    before(async () => {
      upstream = await startRecordingUpstream();
      const grpc = await startGrpcServer({
        address: '127.0.0.1:0',
        authorize: decide,
        newExchange: () => ({}),
      });
      onStopAll(() => grpc.shutdown(0));
      const cfg = productionEnvoy();
      const upstreamPort = Number(new URL(upstream.url).port);
      cfg.endpoint('tollgate').port_value = grpc.port;
      // OpenAI becomes the recording upstream: same cluster, plain HTTP on loopback.
      const openai = cfg.cluster('openai');
      delete openai.transport_socket;
      openai.type = 'STATIC';
      Object.assign(cfg.endpoint('openai'), { address: '127.0.0.1', port_value: upstreamPort });
      // At info level, so Envoy's own lines show their format.
      const started = await startProductionEnvoy(cfg, dir, { logLevel: 'info' });
      envoy = started.envoy;
      probeUrl = started.probeUrl;
      ingressUrl = started.ingressUrl;
    });

    function decide(req: InboundRequest): Promise<Decision> {
      if (req.headers['authorization'] !== `Bearer ${token}`)
        return Promise.resolve({ deny: deny('missing_token', 'No token.') });
      // The sidecar's whoami answer (check/whoami.ts): a "denied" reply with HTTP 200.
      if (req.path === WHOAMI_PATH)
        return Promise.resolve({ deny: { ...deny('whoami', 'whoami'), headers: { 'cache-control': 'no-store' }, body: WHOAMI_BODY } });
      const identity = {
        provider: 'corporate-idp',
        issuer: 'https://auth.example.com',
        subject: 'u-42',
        user: 'alice@example.com',
        groups: ['ml-team'],
        tenant: 'marketing',
        claims: {},
        expiresAt: Math.floor(Date.now() / 1000) + 3600,
      };
      const metadata = {
        requestId: req.id,
        subject: 'u-42',
        user: 'alice@example.com',
        provider: 'corporate-idp',
        groups: 'ml-team',
        tenant: 'marketing',
        model: 'gpt-4o-mini',
        authz: { matchedRule: 'ml-team-may-use-gpt4' },
      };
      return Promise.resolve({
        allow: {
          identity,
          setHeaders: { authorization: 'Bearer sk-upstream' },
          removeHeaders: [],
          responseHeaders: {},
          metadata,
        },
      });
    }

    const accessLines = (): Record<string, unknown>[] =>
      envoy.stdout
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((l) => l['log'] === 'envoy-access');

    it("answers the kubelet's /ready and Prometheus' scrape, and nothing else of the admin interface", async () => {
      const ready = await fetch(`${probeUrl}/ready`);
      expect(ready.status).to.equal(200);
      expect((await ready.text()).trim()).to.equal('LIVE');
      const stats = await fetch(`${probeUrl}/stats/prometheus`);
      expect(stats.status).to.equal(200);
      expect(await stats.text()).to.include('envoy_');
      for (const path of ['/clusters', '/config_dump', '/quitquitquit'])
        expect((await fetch(`${probeUrl}${path}`)).status, path).to.equal(404);
      expect((await fetch(`${probeUrl}/ready`, { method: 'POST' })).status).to.equal(404);
    });

    it('logs one JSON line per request with the identity Tollgate verified, never the token', async () => {
      const body = JSON.stringify({
        model: 'gpt-4o-mini',
        messages: [{ role: 'user', content: 'hi' }],
      });
      const headers = {
        'content-type': 'application/json',
        'x-user-email': 'mallory@evil.example',
      };
      const denied = await fetch(`${ingressUrl}/v1/chat/completions`, {
        method: 'POST',
        headers,
        body,
      });
      expect(denied.status).to.equal(401);
      const allowed = await fetch(`${ingressUrl}/v1/chat/completions`, {
        method: 'POST',
        headers: { ...headers, authorization: `Bearer ${token}` },
        body,
      });
      expect(allowed.status).to.equal(200);
      // Toward OpenAI: its host name, the upstream key, no client-sent identity header.
      const seen = upstream.requests.at(-1)!;
      expect(seen.headers).to.include({
        host: 'api.openai.com',
        authorization: 'Bearer sk-upstream',
      });
      expect(seen.headers['x-user-email']).to.equal(undefined);

      const lines = await waitUntil(() => (accessLines().length >= 2 ? accessLines() : undefined), {
        timeoutMs: 10_000,
        what: 'two access log lines',
      });
      expect(lines[0]).to.include({
        method: 'POST',
        path: '/v1/chat/completions',
        status: 401,
        tollgate_reason: 'missing_token',
        user: null,
      });
      expect(lines[1]).to.include({
        status: 200,
        user: 'alice@example.com',
        subject: 'u-42',
        tenant: 'marketing',
        groups: 'ml-team',
        model: 'gpt-4o-mini',
        rule: 'ml-team-may-use-gpt4',
      });
      expect(lines[1]?.['request_id'])
        .to.be.a('string')
        .and.equal(lines[1]?.['tollgate_request_id']);
      expect([...envoy.stdout, ...envoy.stderr].join('\n'))
        .to.not.include(token)
        .and.not.include('sk-upstream');
      // Envoy's own log lines are JSON too (--log-format in the Deployment).
      const own = envoy.stderr.filter((l) => l.trim() !== '');
      expect(own.length).to.be.above(0);
      for (const line of own)
        expect(JSON.parse(line) as Record<string, unknown>, line).to.include.keys(
          'time',
          'level',
          'msg',
        );
    });

    it("sends the sidecar's 200 whoami answer unchanged, past its local replies, and nothing to OpenAI", async () => {
      const before = upstream.requests.length;
      const res = await fetch(`${ingressUrl}${WHOAMI_PATH}`, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).to.equal(200);
      expect(res.headers.get('content-type')).to.equal('application/json');
      expect(res.headers.get('x-tollgate-reason')).to.equal('whoami');
      expect(res.headers.get('cache-control')).to.equal('no-store');
      expect(await res.text()).to.equal(WHOAMI_BODY);
      const refused = await fetch(`${ingressUrl}${WHOAMI_PATH}`);
      expect(refused.status).to.equal(401);
      expect(upstream.requests.length).to.equal(before);
    });
  });
});
