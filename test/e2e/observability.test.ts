/**
 * Observability end to end: `tollgate serve` + real Envoy + dev issuer + dev upstream + a tiny
 * OTLP/HTTP receiver, with the official openai SDK as the client. After known traffic:
 * - the audit lines carry every documented field and no token, key or prompt (nor does Envoy's
 *   output);
 * - `/metrics` holds exactly the counts and token sums the traffic implies;
 * - the receiver got spans in the trace the client started (its `traceparent`).
 */
import { expect } from 'chai';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import { DevIssuer } from '../../src/dev/issuer.js';
import { DevUpstream } from '../../src/dev/upstream.js';
import type { RunningEnvoy } from '../../src/stack/envoy.js';
import { baseConfig } from '../helpers/e2e.js';
import { metricValue as metric, scrapeMetrics } from '../helpers/prometheus.js';
import { eventually, startEnvoyFor, startServe, type ServeProcess } from '../helpers/serve.js';

const UPSTREAM_KEY = 'sk-upstream-obs-0123456789abcdef';
const PROMPT = 'my very private prompt about project bluebird';
const TRACE_ID = '5b8efff798038103d269b633813fc60c';
const PARENT_SPAN = 'eee19b7ec3c1b174';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  attributes?: { key: string; value: Record<string, unknown> }[];
}

/** Collects the spans of every OTLP/HTTP JSON export it receives. */
async function otlpReceiver(): Promise<{
  url: string;
  spans: OtlpSpan[];
  paths: string[];
  close(): Promise<void>;
}> {
  const spans: OtlpSpan[] = [];
  const paths: string[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      paths.push(req.url ?? '');
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        resourceSpans?: { scopeSpans?: { spans?: OtlpSpan[] }[] }[];
      };
      for (const rs of body.resourceSpans ?? [])
        for (const ss of rs.scopeSpans ?? []) spans.push(...(ss.spans ?? []));
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    spans,
    paths,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function configYaml(issuer: DevIssuer): string {
  return baseConfig({
    issuer,
    provider: `jwksUri: ${issuer.url}/jwks.json`,
    extra: `identityHeaders:
  x-user-email: email
authorization:
  default: allow
  rules:
    - name: ml-team-gpt4o
      match: { models: ["gpt-4o"], claims: { groups: ml-team } }
      action: allow
    - name: nobody-else-gpt4o
      match: { models: ["gpt-4o"] }
      action: deny
rateLimits:
  - name: per-user
    requestsPerUnit: 100
    unit: minute
tokenBudgets:
  - tenant: marketing
    maxTokens: 100000
    period: month
metrics: { perUserLabels: true, maxLabelValues: 50 }
`,
  });
}

describe('e2e: audit logs, metrics and traces', function () {
  this.timeout(90000);
  let issuer: DevIssuer;
  let upstream: DevUpstream;
  let otlp: Awaited<ReturnType<typeof otlpReceiver>>;
  let serve: ServeProcess;
  let envoy: { envoy: RunningEnvoy; lines: string[] };
  const tokens: string[] = [];

  const client = (apiKey: string): OpenAI =>
    new OpenAI({ baseURL: `${envoy.envoy.url}/v1`, apiKey, maxRetries: 0, timeout: 20000 });
  const lines = (audit: string) => serve.logLines().filter((l) => l['audit'] === audit);

  before(async () => {
    issuer = await DevIssuer.start({ audience: 'tollgate-test' });
    upstream = await DevUpstream.start();
    otlp = await otlpReceiver();
    serve = await startServe({
      config: configYaml(issuer),
      env: {
        TEST_UPSTREAM_KEY: UPSTREAM_KEY,
        OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
        OTEL_BSP_SCHEDULE_DELAY: '50',
      },
    });
    envoy = await startEnvoyFor(
      configYaml(issuer),
      Number(serve.grpc.split(':').pop()),
      upstream.url,
    );

    const alice = await issuer.mint({
      sub: 'u-alice',
      email: 'alice@myorg.com',
      groups: ['ml-team'],
      tenant_id: 'marketing',
    });
    const bob = await issuer.mint({
      sub: 'u-bob',
      email: 'bob@myorg.com',
      groups: ['sales'],
      tenant_id: 'marketing',
    });
    tokens.push(alice, bob);
    const messages = [{ role: 'user' as const, content: PROMPT }];
    // 1. JSON, with the client's trace context: 21 input + 34 output tokens.
    await client(alice).chat.completions.create(
      { model: 'gpt-4o', messages },
      {
        headers: {
          traceparent: `00-${TRACE_ID}-${PARENT_SPAN}-01`,
          'x-dev-prompt-tokens': '21',
          'x-dev-completion-tokens': '34',
        },
      },
    );
    // 2. A stream without include_usage (Tollgate injects it): 5 input + 8 output tokens.
    const stream = await client(alice).chat.completions.create(
      { model: 'gpt-4o-mini', messages, stream: true },
      { headers: { 'x-dev-prompt-tokens': '5', 'x-dev-completion-tokens': '8' } },
    );
    for await (const chunk of stream) void chunk;
    // 3. Refused by a rule that names a claim; 4. refused at authentication.
    const refused = await client(bob)
      .chat.completions.create({ model: 'gpt-4o', messages })
      .catch((e: unknown) => e);
    expect(refused).to.be.instanceOf(OpenAI.PermissionDeniedError);
    const forged = `${alice.slice(0, -4)}AAAA`;
    tokens.push(forged);
    const unauth = await client(forged)
      .chat.completions.create({ model: 'gpt-4o', messages })
      .catch((e: unknown) => e);
    expect(unauth).to.be.instanceOf(OpenAI.AuthenticationError);
    await eventually(() => (lines('usage').length >= 2 ? true : undefined), 'two usage lines');
  });

  after(async () => {
    await envoy?.envoy.stop();
    await serve?.stop();
    await Promise.all([issuer?.close(), upstream?.close(), otlp?.close()]);
  });

  it('writes one decision line per request with identity, the claims a rule used, the rule, and timings', () => {
    const decisions = lines('decision');
    expect(decisions).to.have.length(4);
    const [first, streamed, refused, unauth] = decisions as [
      Record<string, unknown>,
      Record<string, unknown>,
      Record<string, unknown>,
      Record<string, unknown>,
    ];
    expect(first).to.include({
      subject: 'u-alice',
      user: 'alice@myorg.com',
      email: 'alice@myorg.com',
      tenant: 'marketing',
      provider: 'main-idp',
      path: '/v1/chat/completions',
      model: 'gpt-4o',
      decision: 'allow',
      reason: 'allowed',
      rule: 'ml-team-gpt4o',
      traceId: TRACE_ID,
    });
    expect(first['requestId']).to.be.a('string').and.not.empty;
    expect(first['groups']).to.deep.equal(['ml-team']);
    expect(first['claimsUsed']).to.deep.equal({ groups: 'ml-team' });
    expect(first['latencyMs']).to.be.a('number');
    expect(first['stages']).to.have.keys('authenticate', 'authorize', 'admit');
    expect(streamed).to.include({ model: 'gpt-4o-mini', decision: 'allow', rule: 'default' });
    expect(refused).to.include({
      subject: 'u-bob',
      decision: 'deny',
      status: 403,
      reason: 'model_not_allowed',
      rule: 'nobody-else-gpt4o',
    });
    expect(unauth).to.include({ decision: 'deny', status: 401, reason: 'bad_signature' });
    expect(unauth).not.to.have.property('subject');
  });

  it('writes one usage line per settled request with the tokens and where they came from', () => {
    const usage = lines('usage');
    const json = usage.find((l) => l['model'] === 'gpt-4o');
    const streamed = usage.find((l) => l['model'] === 'gpt-4o-mini');
    expect(json).to.include({
      subject: 'u-alice',
      tenant: 'marketing',
      inputTokens: 21,
      outputTokens: 34,
      totalTokens: 55,
      source: 'provider',
      charged: 55,
      settled: true,
    });
    expect(streamed).to.include({
      inputTokens: 5,
      outputTokens: 8,
      totalTokens: 13,
      source: 'provider',
      charged: 13,
    });
    expect(json!['requestId']).to.equal(lines('decision')[0]!['requestId']);
    expect(json!['budgets']).to.deep.equal(['tenant:marketing']);
  });

  it('never logs a token, the upstream key or the prompt: not Tollgate, not Envoy', () => {
    const output = `${serve.output()}\n${envoy.lines.join('\n')}`;
    expect(output.length).to.be.greaterThan(1000);
    for (const token of tokens) {
      for (const part of token.split('.')) expect(output).not.to.contain(part);
    }
    expect(output).not.to.contain(UPSTREAM_KEY);
    expect(output).not.to.contain('bluebird');
  });

  it('exports the series with the values the traffic implies', async () => {
    const text = await scrapeMetrics(serve.metricsUrl);
    const genai = {
      gen_ai_operation_name: 'chat',
      gen_ai_provider_name: 'openai',
      tollgate_tenant: 'marketing',
      tollgate_usage_source: 'provider',
    };
    const tokensOf = (model: string, type: string) =>
      metric(text, 'gen_ai_client_token_usage_sum', {
        ...genai,
        gen_ai_request_model: model,
        gen_ai_token_type: type,
      });
    expect(tokensOf('gpt-4o', 'input')).to.equal(21);
    expect(tokensOf('gpt-4o', 'output')).to.equal(34);
    expect(tokensOf('gpt-4o-mini', 'input')).to.equal(5);
    expect(tokensOf('gpt-4o-mini', 'output')).to.equal(8);
    expect(
      metric(text, 'gen_ai_client_token_usage_count', {
        ...genai,
        gen_ai_request_model: 'gpt-4o',
        gen_ai_token_type: 'input',
        tollgate_user: 'alice@myorg.com',
      }),
    ).to.equal(1);
    // Tokens by source (the estimated share is 0 here) and the budget they were charged to.
    expect(
      metric(text, 'tollgate_usage_tokens_total', {
        tollgate_usage_source: 'provider',
        gen_ai_token_type: 'input',
      }),
    ).to.equal(26);
    expect(
      metric(text, 'tollgate_usage_tokens_total', {
        tollgate_usage_source: 'provider',
        gen_ai_token_type: 'output',
      }),
    ).to.equal(42);
    expect(
      metric(text, 'tollgate_usage_tokens_total', { tollgate_usage_source: 'estimated' }),
    ).to.equal(undefined);
    expect(metric(text, 'tollgate_budget_used', { budget: 'tenant:marketing' })).to.equal(68);
    expect(metric(text, 'tollgate_budget_remaining', { budget: 'tenant:marketing' })).to.equal(
      100000 - 68,
    );
    expect(metric(text, 'tollgate_budget_reservations')).to.equal(0);
    expect(metric(text, 'tollgate_budget_reserved', { budget: 'tenant:marketing' })).to.equal(0);
    // Decisions by result and reason, per stage latency, rate-limit hits.
    expect(
      metric(text, 'tollgate_decisions_total', {
        result: 'allow',
        reason: 'allowed',
        tollgate_user: 'alice@myorg.com',
      }),
    ).to.equal(2);
    expect(
      metric(text, 'tollgate_decisions_total', { result: 'deny', reason: 'model_not_allowed' }),
    ).to.equal(1);
    expect(
      metric(text, 'tollgate_decisions_total', {
        result: 'deny',
        reason: 'bad_signature',
        tollgate_user: 'none',
      }),
    ).to.equal(1);
    expect(metric(text, 'tollgate_decision_duration_count', { result: 'allow' })).to.equal(2);
    expect(
      metric(text, 'tollgate_decision_stage_duration_count', {
        stage: 'authenticate',
        outcome: 'pass',
      }),
    ).to.equal(3);
    expect(
      metric(text, 'tollgate_decision_stage_duration_count', {
        stage: 'authenticate',
        outcome: 'deny',
      }),
    ).to.equal(1);
    expect(
      metric(text, 'tollgate_decision_stage_duration_count', {
        stage: 'authorize',
        outcome: 'deny',
      }),
    ).to.equal(1);
    expect(
      metric(text, 'tollgate_decision_stage_duration_count', { stage: 'admit', outcome: 'pass' }),
    ).to.equal(2);
    expect(
      metric(text, 'tollgate_ratelimit_hits_total', { limit: 'per-user', result: 'allowed' }),
    ).to.equal(2);
    // Identity provider keys: fetched at start, never failed.
    expect(metric(text, 'tollgate_jwks_refreshes_total', { provider: 'main-idp' })).to.be.at.least(
      1,
    );
    expect(metric(text, 'tollgate_jwks_failures_total', { provider: 'main-idp' })).to.equal(0);
    expect(metric(text, 'tollgate_jwks_keys', { provider: 'main-idp' })).to.equal(1);
  });

  it('continues the client traceparent: spans reach the OTLP receiver in that trace, one per stage', async () => {
    const inTrace = await eventually(() => {
      const spans = otlp.spans.filter((s) => s.traceId === TRACE_ID);
      return spans.length >= 4 ? spans : undefined;
    }, 'the spans of the traced request');
    expect(otlp.paths[0]).to.equal('/v1/traces');
    const root = inTrace.find((s) => s.name === 'tollgate.check')!;
    expect(root.parentSpanId).to.equal(PARENT_SPAN);
    const children = inTrace.filter((s) => s.parentSpanId === root.spanId).map((s) => s.name);
    expect(children.sort()).to.deep.equal(['admit', 'authenticate', 'authorize']);
    // The other requests started traces of their own (the exporter batches, so wait for them).
    const checks = await eventually(() => {
      const all = otlp.spans.filter((s) => s.name === 'tollgate.check');
      return all.length >= 4 ? all : undefined;
    }, 'a check span for every request');
    expect(new Set(checks.map((s) => s.traceId)).size).to.be.at.least(4);
  });
});
