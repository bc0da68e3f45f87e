/**
 * The Prometheus text an operator scrapes: names, GenAI semantic-convention labels, bounded and
 * optional per-user labels, per-stage latency, budgets, reservations and JWKS counters.
 */
import { expect } from 'chai';
import { PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { Metrics, type UsageRecord } from '../../../src/telemetry/metrics.js';
import { metricValue as value } from '../../helpers/prometheus.js';
import { chat, gateway, identity } from './helpers.js';

async function scrape(metrics: Metrics): Promise<string> {
  const { resourceMetrics } = await metrics.exporter.collect();
  return new PrometheusSerializer(undefined, false).serialize(resourceMetrics);
}

const usage = (over: Partial<UsageRecord> = {}): UsageRecord => ({
  operation: 'chat',
  model: 'gpt-4o-mini',
  tenant: 'acme',
  user: 'ann@myorg.com',
  source: 'provider',
  inputTokens: 30,
  outputTokens: 12,
  ...over,
});

/** The labels every series of a `usage()` record carries. */
const base = {
  gen_ai_operation_name: 'chat',
  gen_ai_provider_name: 'openai',
  gen_ai_request_model: 'gpt-4o-mini',
  tollgate_tenant: 'acme',
};

describe('telemetry/metrics', () => {
  it('gen_ai.client.token.usage follows the GenAI conventions, with the tenant and the source', async () => {
    const m = new Metrics();
    m.recordUsage(usage());
    m.recordUsage(usage({ inputTokens: 10, outputTokens: 5 }));
    m.recordUsage(usage({ source: 'estimated', inputTokens: 7, outputTokens: 3 }));
    const text = await scrape(m);
    const provider = { ...base, tollgate_usage_source: 'provider' };
    expect(
      value(text, 'gen_ai_client_token_usage_sum', { ...provider, gen_ai_token_type: 'input' }),
    ).to.equal(40);
    expect(
      value(text, 'gen_ai_client_token_usage_sum', { ...provider, gen_ai_token_type: 'output' }),
    ).to.equal(17);
    expect(
      value(text, 'gen_ai_client_token_usage_count', { ...provider, gen_ai_token_type: 'input' }),
    ).to.equal(2);
    // Tokens by source: the estimated share is estimated / total.
    expect(
      value(text, 'tollgate_usage_tokens_total', {
        tollgate_usage_source: 'estimated',
        gen_ai_token_type: 'input',
      }),
    ).to.equal(7);
    expect(
      value(text, 'tollgate_usage_tokens_total', {
        tollgate_usage_source: 'provider',
        gen_ai_token_type: 'output',
      }),
    ).to.equal(17);
    expect(text).not.to.contain('tollgate_user');
  });

  it('reports a label value longer than 128 characters as other', async () => {
    const m = new Metrics({ perUserLabels: false, maxLabelValues: 100 });
    m.recordUsage(usage({ model: `gpt-4o-${'x'.repeat(122)}` })); // 129 characters
    m.recordUsage(usage({ model: `gpt-4o-${'x'.repeat(121)}` })); // 128: kept
    const text = await scrape(m);
    const input = { gen_ai_token_type: 'input' };
    expect(value(text, 'gen_ai_client_token_usage_count', { ...input, gen_ai_request_model: 'other' })).to.equal(1);
    expect(
      value(text, 'gen_ai_client_token_usage_count', { ...input, gen_ai_request_model: `gpt-4o-${'x'.repeat(121)}` }),
    ).to.equal(1);
  });

  it('tollgate_cost_usd_total sums the cost of priced requests in USD, by model, tenant and source', async () => {
    const m = new Metrics();
    m.recordUsage(usage({ costMicros: 87 }));
    m.recordUsage(usage({ costMicros: 1_250_000 }));
    m.recordUsage(usage({ source: 'estimated', costMicros: 12 }));
    m.recordUsage(usage());
    const text = await scrape(m);
    expect(value(text, 'tollgate_cost_usd_total', { ...base, tollgate_usage_source: 'provider' })).to.be.closeTo(1.250087, 1e-9);
    expect(value(text, 'tollgate_cost_usd_total', { ...base, tollgate_usage_source: 'estimated' })).to.be.closeTo(0.000012, 1e-12);
  });

  it('adds per-user labels only when enabled, capped by maxLabelValues', async () => {
    const m = new Metrics({ perUserLabels: true, maxLabelValues: 2 });
    for (const user of ['a@x', 'b@x', 'c@x']) m.recordUsage(usage({ user }));
    m.recordUsage(usage({ model: 'gpt-4.1' }));
    m.recordUsage(usage({ model: 'o3-mini' }));
    const text = await scrape(m);
    const input = { gen_ai_token_type: 'input' };
    expect(
      value(text, 'gen_ai_client_token_usage_count', {
        ...input,
        tollgate_user: 'a@x',
        gen_ai_request_model: 'gpt-4o-mini',
      }),
    ).to.equal(1);
    expect(
      value(text, 'gen_ai_client_token_usage_count', {
        ...input,
        tollgate_user: 'other',
        gen_ai_request_model: 'gpt-4o-mini',
      }),
    ).to.equal(1);
    // The third distinct model is folded into `other` as well.
    expect(
      value(text, 'gen_ai_client_token_usage_count', { ...input, gen_ai_request_model: 'other' }),
    ).to.equal(1);
    m.configure(undefined);
    m.recordDecision(
      {
        deny: {
          status: 401,
          reason: 'bad_signature',
          type: 't',
          code: 'c',
          message: 'm',
          headers: {},
        },
      },
      1,
    );
    expect(
      value(await scrape(m), 'tollgate_decisions_total', { reason: 'bad_signature' }),
    ).to.equal(1);
    expect(await scrape(m)).not.to.match(/tollgate_decisions_total\{[^}]*tollgate_user/);
  });

  it('counts decisions by result and reason and times each stage', async () => {
    const m = new Metrics();
    const { gateway: gw } = gateway();
    gw.onDecision((d, ms) => m.recordDecision(d, ms));
    gw.onStage((stage, ms, outcome) => m.recordStage(stage, ms, outcome));
    await gw.decide(chat('ann', 'gpt-4o'));
    await gw.decide(chat('bob', 'gpt-4o'));
    await gw.decide(chat('mallory'));
    const text = await scrape(m);
    expect(
      value(text, 'tollgate_decisions_total', { result: 'allow', reason: 'allowed' }),
    ).to.equal(1);
    expect(
      value(text, 'tollgate_decisions_total', { result: 'deny', reason: 'model_not_allowed' }),
    ).to.equal(1);
    expect(
      value(text, 'tollgate_decisions_total', { result: 'deny', reason: 'bad_signature' }),
    ).to.equal(1);
    expect(value(text, 'tollgate_decision_duration_count', { result: 'deny' })).to.equal(2);
    const stage = (s: string, outcome: string) =>
      value(text, 'tollgate_decision_stage_duration_count', { stage: s, outcome });
    expect(stage('authenticate', 'pass')).to.equal(2);
    expect(stage('authenticate', 'deny')).to.equal(1);
    expect(stage('authorize', 'pass')).to.equal(1);
    expect(stage('authorize', 'deny')).to.equal(1);
    expect(stage('admit', 'pass')).to.equal(1);
  });

  it('tracks outstanding reservations and the last known level of each budget', async () => {
    const m = new Metrics();
    const a = { names: ['tenant:acme', 'group:eng'], reserved: [150, 150] };
    const b = { names: ['tenant:acme'], reserved: [50] };
    m.reservationOpened(a);
    m.reservationOpened(b);
    let text = await scrape(m);
    expect(value(text, 'tollgate_budget_reservations')).to.equal(2);
    expect(value(text, 'tollgate_budget_reserved', { budget: 'tenant:acme' })).to.equal(200);
    m.reservationClosed(a);
    m.recordBudget('tenant:acme', 420, 1000);
    text = await scrape(m);
    expect(value(text, 'tollgate_budget_reservations')).to.equal(1);
    expect(value(text, 'tollgate_budget_reserved', { budget: 'tenant:acme' })).to.equal(50);
    expect(value(text, 'tollgate_budget_reserved', { budget: 'group:eng' })).to.equal(0);
    expect(value(text, 'tollgate_budget_used', { budget: 'tenant:acme' })).to.equal(420);
    expect(value(text, 'tollgate_budget_remaining', { budget: 'tenant:acme' })).to.equal(580);
  });

  it('exports JWKS counters per provider, monotonic across a replaced authenticator', async () => {
    const m = new Metrics();
    const stats = (refreshes: number, failures: number) => ({
      stats: { providers: [{ name: 'idp', refreshes, failures, keys: 2 }] },
    });
    const first = stats(3, 1);
    m.observeJwks(first);
    let text = await scrape(m);
    expect(value(text, 'tollgate_jwks_refreshes_total', { provider: 'idp' })).to.equal(3);
    expect(value(text, 'tollgate_jwks_failures_total', { provider: 'idp' })).to.equal(1);
    expect(value(text, 'tollgate_jwks_keys', { provider: 'idp' })).to.equal(2);
    m.observeJwks(first); // the same authenticator kept by a reload: nothing is added
    m.observeJwks(stats(1, 0)); // a new one after `authentication:` changed
    text = await scrape(m);
    expect(value(text, 'tollgate_jwks_refreshes_total', { provider: 'idp' })).to.equal(4);
    expect(value(text, 'tollgate_jwks_failures_total', { provider: 'idp' })).to.equal(1);
  });

  it('keeps the existing series: reloads, rate-limit hits, store errors and fallbacks, shadow denials', async () => {
    const m = new Metrics();
    m.recordReload('success');
    m.recordReload('rejected');
    m.recordRateLimit('per-user', 'limited');
    m.recordStoreError(true);
    m.recordStoreFallback('local');
    const allow = { identity: identity(), setHeaders: {}, removeHeaders: [], responseHeaders: {} };
    m.recordDecision(
      { allow: { ...allow, metadata: {}, shadowDenied: { rule: 'r1', reason: 'access_denied' } } },
      0.5,
    );
    const text = await scrape(m);
    expect(value(text, 'tollgate_config_reloads_total', { result: 'rejected' })).to.equal(1);
    expect(
      value(text, 'tollgate_ratelimit_hits_total', { limit: 'per-user', result: 'limited' }),
    ).to.equal(1);
    expect(value(text, 'tollgate_store_errors_total', { kind: 'timeout' })).to.equal(1);
    expect(value(text, 'tollgate_store_fallbacks_total', { policy: 'local' })).to.equal(1);
    expect(value(text, 'tollgate_policy_shadow_denials_total', { rule: 'r1' })).to.equal(1);
  });
});
