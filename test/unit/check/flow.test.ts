/**
 * The Check hands an allowed request's hand-off (with its reservation) to ext_proc through
 * Handoffs, keyed by the id it publishes in the allow metadata (`admission`); a hand-off
 * nobody takes gives its reservation back when it expires.
 */
import { expect } from 'chai';
import { Handoffs } from '../../../src/handoff/handoff.js';
import { BudgetLedger } from '../../../src/budgets/ledger.js';
import { BudgetPlanner } from '../../../src/budgets/planner.js';
import { AuthorizeStep } from '../../../src/check/authorize.js';
import { CheckFlow, checkSteps } from '../../../src/check/flow.js';
import { Responder } from '../../../src/check/respond.js';
import { MemoryStore } from '../../../src/store/memory.js';
import { budget, config, identity, logSink, T0 } from '../budgets/helpers.js';

const KEY = 'tb:tenant:acme:2026-11';

function setup() {
  let clock = T0;
  const store = new MemoryStore();
  const cfg = config([budget({ tenant: 'acme', maxTokens: 1000 })]);
  const { logger, lines } = logSink();
  const ledger = new BudgetLedger(cfg, store, { logger, now: () => clock });
  const handoffs = new Handoffs({
    ttlMs: 60_000,
    now: () => clock,
    onExpire: (a) => void ledger.release(a, 'not_processed'),
  });
  const gateway = new CheckFlow({
    config: cfg,
    steps: checkSteps({
      verifier: { authenticate: () => Promise.resolve(identity()) },
      authorize: new AuthorizeStep(cfg.authorization),
      planners: [new BudgetPlanner(cfg)],
      store,
      responder: new Responder(cfg, { tenants: {} }),
      handoffs,
    }),
    logger,
    now: () => clock,
  });
  const request = (maxTokens: number, id = 'req-1') => ({
    id,
    method: 'POST',
    path: '/v1/chat/completions',
    headers: { authorization: 'Bearer stub.verified.token-for-the-gateway-test', 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: maxTokens }),
  });
  return { store, handoffs, gateway, request, lines, tick: (ms: number) => (clock += ms) };
}

describe('check/CheckFlow hand-offs', () => {
  it('publishes the admission id and puts the admission, whose reservation id is that id', async () => {
    const { gateway, handoffs, request, store } = setup();
    const decision = await gateway.decide(request(100));
    const id = decision.allow?.metadata['admission'];
    expect(id).to.be.a('string').and.match(/^[0-9a-f-]{36}$/);
    expect(decision.allow?.metadata['budgets']).to.equal('tenant:acme');
    expect(decision.allow?.responseHeaders['x-ratelimit-limit-tokens']).to.equal('1000');
    const admission = handoffs.take(id as string);
    expect(admission).to.include({ id, requestId: 'req-1', method: 'POST', path: '/v1/chat/completions', model: 'gpt-4o-mini', admittedAt: T0 });
    expect(admission?.identity.tenant).to.equal('acme');
    expect(admission).not.to.have.property('rawBody'); // ext_proc edits Envoy's own bytes
    expect(admission?.body).to.have.property('max_tokens', 100);
    expect(admission?.promptEstimate).to.be.greaterThan(0);
    expect(admission?.reservation?.id).to.equal(id);
    expect((await store.readBudget(KEY, T0)).reserved).to.equal(admission?.reservation?.reserved[0]);
  });

  it('gives every request its own admission id', async () => {
    const { gateway, request } = setup();
    const a = await gateway.decide(request(1, 'r1'));
    const b = await gateway.decide(request(1, 'r2'));
    expect(a.allow?.metadata['admission']).not.to.equal(b.allow?.metadata['admission']);
  });

  it('puts nothing for a refused request', async () => {
    const { gateway, handoffs, request } = setup();
    // Too large to fit at all: refused whole, nothing reserved, nothing put.
    expect((await gateway.decide(request(5000))).deny?.reason).to.equal('budget_exhausted');
    expect(handoffs.size).to.equal(0);
    await gateway.decide(request(991)); // 9 prompt + 991: all 1000 tokens
    const refused = await gateway.decide(request(1, 'req-2'));
    expect(refused.deny?.reason).to.equal('budget_exhausted');
    expect(handoffs.size).to.equal(1);
  });

  it('hands ext_proc the output limit to write: the default when the request names none', async () => {
    const { gateway, handoffs, request } = setup();
    const given = await gateway.decide(request(100));
    expect(handoffs.take(given.allow?.metadata['admission'] as string)).not.to.have.property('outputLimit');
    const none = await gateway.decide({
      ...request(0, 'req-2'),
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], n: 2 }),
    });
    const admission = handoffs.take(none.allow?.metadata['admission'] as string);
    expect(admission?.outputLimit).to.equal(100); // the helpers' defaultMaxOutputTokens
    expect(admission?.reservation?.reserved).to.deep.equal([9 + 2 * 100]);
  });

  it('releases the reservation of an admission that ext_proc never took', async () => {
    const { gateway, handoffs, request, store, lines, tick } = setup();
    await gateway.decide(request(100, 'lost'));
    expect((await store.readBudget(KEY, T0)).reserved).to.be.greaterThan(0);
    tick(61_000);
    await gateway.decide(request(1, 'next')); // a put sweeps the expired entry
    await new Promise((r) => setImmediate(r));
    expect(handoffs.size).to.equal(1);
    const released = lines.find((l) => l['audit'] === 'usage' && l['requestId'] === 'lost');
    expect(released).to.include({ charged: 0, reason: 'not_processed', settled: true });
    const state = await store.readBudget(KEY, T0 + 61_000);
    expect(state.used).to.equal(0);
    // Only the second request's reservation is left.
    expect(state.reserved).to.be.lessThan(100);
  });
});
