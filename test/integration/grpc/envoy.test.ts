import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { AUTHZ_NAMESPACE } from '../../../src/edge/extproc-adapter.js';
import { HANDOFF_KEY } from '../../../src/handoff/handoff.js';
import { deny } from '../../../src/domain/denials.js';
import type { Allowance, Decision } from '../../../src/domain/decision.js';
import type { InboundRequest } from '../../../src/domain/request.js';
import { renderBootstrap, upstreamCluster } from '../../../src/stack/bootstrap.js';
import type { BootstrapOptions } from '../../../src/stack/bootstrap.js';
import { findEnvoyBinary } from '../../../src/stack/envoy.js';
import { startEdge, startRecordingUpstream } from '../../helpers/envoy.js';
import type { Edge, RecordingUpstream } from '../../helpers/envoy.js';
import { stopAllAfter } from '../../helpers/processes.js';

describe('Envoy bootstrap', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-bootstrap-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  const cases: Array<[string, BootstrapOptions]> = [
    [
      'plain http upstream, identity headers',
      {
        grpcPort: 9001,
        upstreamUrl: 'http://127.0.0.1:8080',
        identityHeaders: ['x-user-id', 'X-Tenant-Id'],
      },
    ],
    [
      'https upstream by name, fixed port',
      { grpcPort: 9001, upstreamUrl: 'https://api.openai.com', port: 18080 },
    ],
    [
      'streamed bodies, DNS upstream, no identity headers',
      {
        grpcPort: 9001,
        upstreamUrl: 'http://localhost:8080',
        identityHeaders: [],
        processingMode: {
          requestHeaders: 'send',
          responseHeaders: 'send',
          requestBody: 'buffered',
          responseBody: 'streamed',
          requestTrailers: 'skip',
          responseTrailers: 'skip',
        },
      },
    ],
  ];

  for (const [name, options] of cases) {
    it(`renders a file that envoy --mode validate accepts: ${name}`, function () {
      this.timeout(30_000);
      const file = join(dir, `${name.replace(/\W+/g, '-')}.yaml`);
      writeFileSync(file, renderBootstrap(options));
      const run = spawnSync(
        findEnvoyBinary(),
        ['--mode', 'validate', '-c', file, '--log-level', 'warn'],
        {
          encoding: 'utf8',
        },
      );
      expect(run.status, `${run.stdout}${run.stderr}`).to.equal(0);
      expect(run.stdout).to.contain('OK');
    });
  }

  it('keeps ext_authz fail-closed in front of ext_proc, and drops client identity headers early', () => {
    const doc = parse(renderBootstrap(cases[0]![1])) as {
      static_resources: {
        clusters: Array<{ name: string }>;
        listeners: Array<{
          filter_chains: Array<{ filters: Array<{ typed_config: Record<string, unknown> }> }>;
        }>;
      };
    };
    const hcm = doc.static_resources.listeners[0]!.filter_chains[0]!.filters[0]!.typed_config;
    const filters = hcm['http_filters'] as Array<{
      name: string;
      typed_config: Record<string, unknown>;
    }>;
    expect(filters.map((f) => f.name)).to.deep.equal([
      'envoy.filters.http.ext_authz',
      'envoy.filters.http.ext_proc',
      'tollgate.ext_proc.stream_edit',
      'tollgate.ext_proc.stream_observe',
      'envoy.filters.http.router',
    ]);
    // Each stream filter runs only for its own value of the Check's `stream` key, fail-closed;
    // only the observe filter is in observability mode (Envoy never waits for it).
    for (const [index, value, observe] of [
      [2, 'edit', false],
      [3, 'observe', true],
    ] as const) {
      const stream = filters[index]!.typed_config as {
        extension_config: { typed_config: Record<string, unknown> };
        xds_matcher: unknown;
      };
      expect(stream.extension_config.typed_config).to.include({ failure_mode_allow: false });
      expect(Boolean(stream.extension_config.typed_config['observability_mode'])).to.equal(observe);
      expect(stream.xds_matcher).to.deep.nested.include({
        'matcher_list.matchers[0].predicate.single_predicate.input.typed_config.path[0].key':
          'stream',
        'matcher_list.matchers[0].predicate.single_predicate.custom_match.typed_config.value.string_match.exact':
          value,
        'matcher_list.matchers[0].predicate.single_predicate.custom_match.typed_config.invert': true,
      });
    }
    expect(filters[0]!.typed_config).to.include({
      failure_mode_allow: false,
      validate_mutations: true,
    });
    const extProc = filters[1]!.typed_config as {
      extension_config: { typed_config: Record<string, unknown> };
      xds_matcher: unknown;
    };
    expect(extProc.extension_config.typed_config).to.include({
      failure_mode_allow: false,
      allow_mode_override: true,
    });
    // ext_proc is skipped unless ext_authz published the admission id the exchange reads.
    expect(extProc.xds_matcher).to.deep.nested.include({
      'matcher_list.matchers[0].predicate.single_predicate.input.typed_config.filter':
        AUTHZ_NAMESPACE,
      'matcher_list.matchers[0].predicate.single_predicate.input.typed_config.path[0].key':
        HANDOFF_KEY,
      'matcher_list.matchers[0].predicate.single_predicate.custom_match.typed_config.invert': true,
    });
    // Fewer streams per connection than nghttp2's burst of 1000 resets (envoy/local.yaml).
    const tollgate = doc.static_resources.clusters.find((c) => c.name === 'tollgate');
    expect(tollgate).to.deep.nested.include({
      'typed_extension_protocol_options.envoy\\.extensions\\.upstreams\\.http\\.v3\\.HttpProtocolOptions.common_http_protocol_options.max_requests_per_connection': 500,
    });
    expect(JSON.stringify(hcm['early_header_mutation_extensions'])).to.contain(
      '{"remove":"x-user-id"},{"remove":"x-tenant-id"}',
    );
  });

  it('builds the upstream cluster from the URL', () => {
    const tls = upstreamCluster('https://api.openai.com', '/ca.pem');
    expect(tls.host).to.equal('api.openai.com');
    expect(tls.cluster).to.include({ type: 'STRICT_DNS' });
    expect(JSON.stringify(tls.cluster))
      .to.contain('"sni":"api.openai.com"')
      .and.contain('"port_value":443');
    const plain = upstreamCluster('http://127.0.0.1:8080/');
    expect(plain.host).to.equal('127.0.0.1:8080');
    expect(plain.cluster).to.include({ type: 'STATIC' }).and.not.have.property('transport_socket');
    expect(() => upstreamCluster('https://api.openai.com/v1')).to.throw(/without a path/);
    expect(() => upstreamCluster('ftp://example.com')).to.throw(/http/);
  });
});

describe('real Envoy in front of the gRPC server', () => {
  stopAllAfter();
  let upstream: RecordingUpstream;
  let edge: Edge;
  const exchanges: Array<{ metadata?: Record<string, unknown>; outcome?: string }> = [];

  const allowance: Allowance = {
    identity: {
      provider: 'p',
      issuer: 'i',
      subject: 'alice',
      user: 'alice',
      groups: [],
      claims: {},
      expiresAt: 0,
    },
    setHeaders: { 'x-user-id': 'alice', authorization: 'Bearer sk-upstream' },
    removeHeaders: [],
    responseHeaders: { 'x-ratelimit-remaining-requests': '99' },
    // Every allow of the real pipeline carries an admission id; ext_proc runs only then.
    metadata: { tenant: 'marketing', admission: 'adm-1' },
  };

  before(async function () {
    this.timeout(30_000);
    upstream = await startRecordingUpstream();
    edge = await startEdge({
      upstreamUrl: upstream.url,
      identityHeaders: ['x-user-id', 'x-user-email'],
      authorize: (req: InboundRequest): Promise<Decision> =>
        Promise.resolve(
          req.headers['authorization'] === 'Bearer good'
            ? { allow: allowance }
            : { deny: deny('missing_token', 'Missing bearer token.') },
        ),
      newExchange: () => {
        const record: { metadata?: Record<string, unknown>; outcome?: string } = {};
        exchanges.push(record);
        let rewrite = false;
        return {
          requestHeaders: (h, metadata) => {
            record.metadata = metadata;
            rewrite = h['x-test-rewrite'] === 'yes';
            if (h['x-test-immediate'] === 'yes')
              return { modeOverride: { requestBody: 'buffered' } };
            // Ask for the response body of this request only.
            return rewrite ? { modeOverride: { responseBody: 'streamed' } } : undefined;
          },
          requestBody: () => ({
            refuse: { denial: deny('internal_error', 'not sent'), details: 'tollgate_test' },
          }),
          responseBody: (chunk) =>
            rewrite ? { body: Buffer.from(chunk.toString('utf8').toUpperCase()) } : undefined,
          end: (outcome) => void (record.outcome = outcome),
        };
      },
    });
  });

  it('passes an allowed request with verified identity headers only', async () => {
    const res = await fetch(`${edge.envoy.url}/v1/models?limit=1`, {
      headers: {
        authorization: 'Bearer good',
        'x-user-id': 'mallory',
        'x-user-email': 'mallory@evil.test',
      },
    });
    expect(res.status).to.equal(200);
    expect(await res.json()).to.deep.equal({ ok: true });
    expect(res.headers.get('x-ratelimit-remaining-requests')).to.equal('99');
    const got = upstream.requests.at(-1);
    expect(got?.url).to.equal('/v1/models?limit=1');
    expect(got?.headers).to.include({ 'x-user-id': 'alice', authorization: 'Bearer sk-upstream' });
    expect(got?.headers).to.not.have.property('x-user-email');
    expect(got?.headers['host']).to.equal(new URL(upstream.url).host);
    // ext_authz metadata reached ext_proc, proving both services' protos against Envoy.
    expect(exchanges.at(-1)?.metadata).to.include({ tenant: 'marketing' });
    expect(exchanges.at(-1)?.outcome).to.equal('complete');
  });

  it('applies a per-request mode override and body mutations from ext_proc', async () => {
    const res = await fetch(`${edge.envoy.url}/v1/models`, {
      headers: { authorization: 'Bearer good', 'x-test-rewrite': 'yes' },
    });
    expect(res.status).to.equal(200);
    expect(await res.text()).to.equal('{"OK":TRUE}');
    expect(exchanges.at(-1)?.outcome).to.equal('complete');
  });

  it('answers the client with an ext_proc ImmediateResponse instead of forwarding the request', async () => {
    const before = upstream.requests.length;
    const res = await fetch(`${edge.envoy.url}/v1/chat/completions`, {
      method: 'POST',
      headers: {
        authorization: 'Bearer good',
        'x-test-immediate': 'yes',
        'content-type': 'application/json',
      },
      body: '{"model":"gpt-4o"}',
    });
    expect(res.status).to.equal(500);
    expect(res.headers.get('content-type')).to.equal('application/json');
    expect(res.headers.get('x-tollgate-reason')).to.equal('internal_error');
    expect(await res.json()).to.deep.equal({
      error: { message: 'not sent', type: 'server_error', param: null, code: 'internal_error' },
    });
    expect(upstream.requests.length, 'the upstream never saw it').to.equal(before);
  });

  it('answers a deny with status 401, the JSON envelope and x-tollgate-reason', async () => {
    const before = upstream.requests.length;
    const res = await fetch(`${edge.envoy.url}/v1/chat/completions`, {
      method: 'POST',
      body: '{}',
    });
    expect(res.status).to.equal(401);
    expect(res.headers.get('content-type')).to.equal('application/json');
    expect(res.headers.get('x-tollgate-reason')).to.equal('missing_token');
    expect(res.headers.get('www-authenticate')).to.match(/^Bearer realm="tollgate"/);
    expect(await res.json()).to.deep.equal({
      error: {
        message: 'Missing bearer token.',
        type: 'invalid_request_error',
        param: null,
        code: 'invalid_api_key',
      },
    });
    expect(upstream.requests.length).to.equal(before);
  });

  it('opens no ext_proc stream for a denied request', async () => {
    const before = exchanges.length;
    const denied = await fetch(`${edge.envoy.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: 'Bearer wrong' },
      body: '{}',
    });
    expect(denied.status).to.equal(401);
    await denied.text();
    const allowed = await fetch(`${edge.envoy.url}/v1/models`, {
      headers: { authorization: 'Bearer good' },
    });
    expect(allowed.status).to.equal(200);
    await allowed.text();
    // Only the allowed request reached the ext_proc service.
    expect(exchanges.length).to.equal(before + 1);
    expect(exchanges.at(-1)?.metadata).to.include({ admission: 'adm-1' });
  });
});
