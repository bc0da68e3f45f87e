/**
 * The filters as Envoy Gateway builds them from k8s/overlays/envoy-gateway (docs/envoy-gateway.md),
 * run in real Envoy in front of a real sidecar: ext_authz named the Envoy Gateway way
 * (`envoy.filters.http.ext_authz/securitypolicy/<ns>/<name>`), and one ext_proc filter with the
 * overlay's EnvoyExtensionPolicy settings, no matcher and no stream filters (Envoy Gateway can
 * express neither). Shows that Tollgate needs no setting for it: the hand-off arrives under the
 * fixed ext_authz namespace the overlay forwards, and every kind of request is metered exactly
 * by the one filter. The rest of the bootstrap is `tollgate stack`'s.
 */
import { expect } from 'chai';
import OpenAI from 'openai';
import { parse, stringify } from 'yaml';
import type { MeView } from '../../src/check/me.js';
import { parseConfig } from '../../src/config/load.js';
import { renderBootstrap } from '../../src/stack/bootstrap.js';
import { startEnvoy, type RunningEnvoy } from '../../src/stack/envoy.js';
import { stackBootstrapOptions } from '../../src/stack/run.js';
import { find, kustomize } from '../helpers/deploy.js';
import { baseConfig, UPSTREAM_ENV, withDevs } from '../helpers/e2e.js';
import { startServe, type ServeProcess } from '../helpers/serve.js';

type Json = Record<string, unknown>;

interface ExtProcPolicy {
  processingMode: { request?: object; response?: object; allowModeOverride?: boolean };
  metadata: { accessibleNamespaces: string[] };
  messageTimeout: string;
  failOpen: boolean;
}

/** The overlay's ext_proc settings, as Envoy Gateway v1.9.1 translates them (extproc.go). */
function extProcConfig(policy: ExtProcPolicy, grpc: Json, namespaces: readonly string[]): Json {
  const mode = policy.processingMode;
  return {
    '@type': 'type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor',
    grpc_service: grpc,
    failure_mode_allow: policy.failOpen,
    processing_mode: {
      request_header_mode: mode.request !== undefined ? 'SEND' : 'SKIP',
      response_header_mode: mode.response !== undefined ? 'SEND' : 'SKIP',
      request_body_mode: 'NONE',
      response_body_mode: 'NONE',
      request_trailer_mode: 'SKIP',
      response_trailer_mode: 'SKIP',
    },
    allow_mode_override: mode.allowModeOverride === true,
    message_timeout: policy.messageTimeout,
    metadata_options: { forwarding_namespaces: { untyped: [...namespaces] } },
  };
}

/** `tollgate stack`'s bootstrap with its ext_authz and ext_proc filters as Envoy Gateway names and builds them. */
function gatewayBootstrap(
  configYaml: string,
  grpcPort: number,
  upstreamUrl: string,
  policy: ExtProcPolicy,
  namespaces: readonly string[],
): string {
  const options = stackBootstrapOptions(parseConfig(configYaml), grpcPort, upstreamUrl, 0);
  const doc = parse(renderBootstrap(options)) as {
    static_resources: {
      listeners: { filter_chains: { filters: { typed_config: { http_filters: Json[] } }[] }[] }[];
    };
  };
  const hcm = doc.static_resources.listeners[0]!.filter_chains[0]!.filters[0]!.typed_config;
  const byName = (name: string): Json => {
    const filter = hcm.http_filters.find((f) => f['name'] === name);
    if (filter === undefined) throw new Error(`bootstrap has no ${name}`);
    return filter;
  };
  const authz = {
    ...byName('envoy.filters.http.ext_authz'),
    name: 'envoy.filters.http.ext_authz/securitypolicy/tollgate/tollgate',
  };
  const headersFilter = byName('envoy.filters.http.ext_proc') as {
    typed_config: { extension_config: { typed_config: { grpc_service: Json } } };
  };
  const extProc = {
    name: 'envoy.filters.http.ext_proc/envoyextensionpolicy/tollgate/tollgate',
    typed_config: extProcConfig(
      policy,
      headersFilter.typed_config.extension_config.typed_config.grpc_service,
      namespaces,
    ),
  };
  hcm.http_filters = [authz, extProc, byName('envoy.filters.http.router')];
  return stringify(doc);
}

describe('e2e: the filters Envoy Gateway builds from k8s/overlays/envoy-gateway', function () {
  this.timeout(90_000);
  const devs = withDevs();
  let sidecar: ServeProcess | undefined;
  let envoy: RunningEnvoy | undefined;
  let perPolicy: RunningEnvoy | undefined;
  let policy: ExtProcPolicy;
  let token = '';

  before(async () => {
    const rendered = kustomize('k8s/overlays/envoy-gateway').objects;
    const spec = find(rendered, 'EnvoyExtensionPolicy', 'tollgate').spec as {
      extProc: ExtProcPolicy[];
    };
    policy = spec.extProc[0]!;
    const config = baseConfig({ issuer: devs.issuer });
    sidecar = await startServe({ config, env: { ...UPSTREAM_ENV } });
    const port = Number(sidecar.grpc.split(':').pop());
    const start = (namespaces: readonly string[]) =>
      startEnvoy({
        ...stackBootstrapOptions(parseConfig(config), port, devs.upstream.url, 0),
        bootstrap: gatewayBootstrap(config, port, devs.upstream.url, policy, namespaces),
      });
    envoy = await start(policy.metadata.accessibleNamespaces);
    // The counter-example: forwarding the namespace named after the filter.
    perPolicy = await start(['envoy.filters.http.ext_authz/securitypolicy/tollgate/tollgate']);
    token = await devs.issuer.mint({ sub: 'ann' });
  });

  after(async () => {
    await Promise.all([envoy?.stop(), perPolicy?.stop()]);
    await sidecar?.stop();
  });

  const usage = () => (sidecar?.logLines() ?? []).filter((l) => l['audit'] === 'usage');
  const settledAfter = async (before: number, count: number) => {
    const deadline = Date.now() + 10_000;
    while (usage().length < before + count && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    return usage().slice(before);
  };

  it('meters JSON and streams exactly through the one ext_proc filter, the hand-off read from the forwarded namespace', async () => {
    const client = new OpenAI({ baseURL: `${envoy?.url}/v1`, apiKey: token, maxRetries: 0 });
    const before = usage().length;
    const upstreamBefore = devs.upstream.reported.length;
    const messages = [{ role: 'user' as const, content: 'hello there' }];
    const plain = await client.chat.completions.create({ model: 'gpt-4o-mini', messages });
    expect(plain.usage?.total_tokens).to.be.above(0);
    // Without include_usage (`stream: edit` in the metadata, which nothing here reads): the
    // filter asks for the body by mode override, injects include_usage and strips the chunk.
    const stripped = [];
    for await (const chunk of await client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages,
      stream: true,
    }))
      stripped.push(chunk);
    expect(stripped.filter((c) => c.usage)).to.deep.equal([]);
    // With include_usage (`stream: observe`): the client's own usage chunk arrives.
    const own = [];
    for await (const chunk of await client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages,
      stream: true,
      stream_options: { include_usage: true },
    }))
      own.push(chunk);
    expect(own.filter((c) => c.usage)).to.have.length(1);

    const settled = await settledAfter(before, 3);
    expect(settled).to.have.length(3);
    expect(settled.map((l) => [l['source'], l['settled'], l['subject']])).to.deep.equal([
      ['provider', true, 'ann'],
      ['provider', true, 'ann'],
      ['provider', true, 'ann'],
    ]);
    const reported = devs.upstream.reported.slice(upstreamBefore).map((r) => r.totalTokens);
    expect(settled.map((l) => l['totalTokens'])).to.deep.equal(reported);
  });

  /** Envoy's ext_proc counters (`http.ingress.ext_proc.<name>`). */
  const extProcStats = async (): Promise<Record<string, number>> => {
    const text = await (await fetch(`${envoy?.adminUrl}/stats?filter=ext_proc`)).text();
    return Object.fromEntries(
      text
        .split('\n')
        .map((l) => /^http\.ingress\.ext_proc\.(\w+): (\d+)$/.exec(l))
        .filter((m) => m !== null)
        .map((m) => [m[1]!, Number(m[2])]),
    );
  };

  it('passes a refused request through the ext_proc filter untouched and charges nothing', async () => {
    const before = usage().length;
    const statsBefore = await extProcStats();
    const res = await fetch(`${envoy?.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(res.status).to.equal(401);
    expect(res.headers.get('x-tollgate-reason')).to.be.a('string');
    const body = (await res.json()) as { error: { type: string } };
    expect(body.error.type).to.be.a('string');
    // Without the admission matcher, the refusal's response headers open a stream: the cost
    // docs/envoy-gateway.md names. Tollgate answers its one message and passes it through.
    const statsAfter = await extProcStats();
    expect(statsAfter['streams_started']! - statsBefore['streams_started']!).to.equal(1);
    expect(statsAfter['stream_msgs_sent']! - statsBefore['stream_msgs_sent']!).to.equal(1);
    expect(statsAfter['streams_failed']).to.equal(statsBefore['streams_failed']);
    // A request that is metered settles within moments (above); this one has nothing to settle.
    const client = new OpenAI({ baseURL: `${envoy?.url}/v1`, apiKey: token, maxRetries: 0 });
    await client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'hi' }],
    });
    const settled = await settledAfter(before, 1);
    expect(settled.map((l) => l['subject'])).to.deep.equal(['ann']);
  });

  it('finds no hand-off under the namespace named after the filter', async () => {
    const client = new OpenAI({ baseURL: `${perPolicy?.url}/v1`, apiKey: token, maxRetries: 0 });
    const before = usage().length;
    const res = await client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(res.usage?.total_tokens).to.be.above(0);
    // Then one through the right Envoy: its usage line is the only one that appears.
    const right = new OpenAI({ baseURL: `${envoy?.url}/v1`, apiKey: token, maxRetries: 0 });
    await right.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'hi' }],
    });
    const settled = await settledAfter(before, 1);
    await new Promise((r) => setTimeout(r, 500));
    expect(usage().slice(before)).to.have.length(1);
    expect(settled).to.have.length(1);
  });

  it('sends the whoami answer through the ext_proc filter unchanged, to the SDK itself, and nothing upstream', async () => {
    const client = new OpenAI({ baseURL: `${envoy?.url}/v1`, apiKey: token, maxRetries: 0 });
    const received = devs.upstream.received.length;
    const before = usage().length;
    // The SDK's own client reaches it under its base URL.
    const view = await client.get<MeView>('/tollgate/whoami');
    expect(view.identity).to.include({ user: 'ann', subject: 'ann', provider: 'main-idp' });
    const { response } = await client.get('/tollgate/whoami').withResponse();
    expect(response.status).to.equal(200);
    expect(response.headers.get('x-tollgate-reason')).to.equal('whoami');
    await new Promise((r) => setTimeout(r, 200));
    expect(devs.upstream.received.length).to.equal(received);
    expect(usage().length).to.equal(before);
  });
});
