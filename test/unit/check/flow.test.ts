/**
 * The Check hands an allowed request's hand-off (with its reservation) to ext_proc in the
 * allow metadata, under the id it publishes as `admission`; nothing is kept in the process,
 * and a reservation nobody settles expires in the store.
 */
import { expect } from 'chai';
import { decodeHandoff, type Handoff } from '../../../src/handoff/handoff.js';
import type { Decision } from '../../../src/domain/decision.js';
import { BudgetPlanner } from '../../../src/budgets/planner.js';
import { AuthorizeStep } from '../../../src/check/authorize.js';
import { CheckFlow, checkSteps } from '../../../src/check/flow.js';
import { Responder } from '../../../src/check/respond.js';
import { MemoryStore } from '../../../src/store/memory.js';
import { RateLimitPlanner } from '../../../src/limits/rate-limit.js';
import { budget, config, identity, logSink, T0 } from '../budgets/helpers.js';

const KEY = 'tb:tenant:acme:2026-11';

function setup() {
  let clock = T0;
  const store = new MemoryStore();
  const cfg = config([budget({ tenant: 'acme', maxTokens: 1000 })]);
  const { logger, lines } = logSink();
  const gateway = new CheckFlow({
    config: cfg,
    steps: checkSteps({
      verifier: { authenticate: () => Promise.resolve(identity()) },
      authorize: new AuthorizeStep(cfg.authorization),
      planners: [new BudgetPlanner(cfg)],
      store,
      responder: new Responder(cfg, { tenants: {} }),
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
  return { store, gateway, request, lines, tick: (ms: number) => (clock += ms) };
}

/** The hand-off an allowed decision carries to ext_proc, read back as ext_proc reads it. */
function handoffOf(decision: Decision): Handoff | undefined {
  const metadata = decision.allow?.metadata;
  // Through JSON, as Envoy's Struct carries it.
  return metadata === undefined ? undefined : decodeHandoff(JSON.parse(JSON.stringify(metadata)) as Record<string, unknown>);
}

describe('check/CheckFlow hand-offs', () => {
  it('hands over in the metadata: the id, the caller, the request, the reservation under that id', async () => {
    const { gateway, request, store } = setup();
    const decision = await gateway.decide(request(100));
    const id = decision.allow?.metadata['admission'];
    expect(id).to.be.a('string').and.match(/^[0-9a-f-]{36}$/);
    expect(decision.allow?.metadata['budgets']).to.equal('tenant:acme');
    expect(decision.allow?.responseHeaders['x-ratelimit-limit-tokens']).to.equal('1000');
    const handoff = handoffOf(decision);
    expect(handoff).to.include({ id, requestId: 'req-1', method: 'POST', path: '/v1/chat/completions', model: 'gpt-4o-mini', admittedAt: T0, injectUsage: false });
    expect(handoff?.identity).to.include({ tenant: 'acme', user: identity().user, subject: identity().subject });
    expect(handoff).not.to.have.property('body'); // ext_proc reads the body from Envoy when it needs it
    expect(handoff?.promptEstimate).to.be.greaterThan(0);
    expect(handoff?.reservation?.id).to.equal(id);
    expect(handoff?.reservation?.names).to.deep.equal(['tenant:acme']);
    expect((await store.readBudget(KEY, T0)).reserved).to.equal(handoff?.reservation?.reserved[0]);
  });

  it('keeps it compact: no claims but for a model list, whose rules may read them', async () => {
    const { gateway, request } = setup();
    const chat = await gateway.decide(request(100));
    expect(handoffOf(chat)?.identity.claims).to.deep.equal({});
    expect(JSON.stringify(chat.allow?.metadata).length).to.be.below(1024);
  });

  it('gives every request its own hand-off id', async () => {
    const { gateway, request } = setup();
    const a = await gateway.decide(request(1, 'r1'));
    const b = await gateway.decide(request(1, 'r2'));
    expect(a.allow?.metadata['admission']).not.to.equal(b.allow?.metadata['admission']);
  });

  it('hands nothing over for a refused request, which reserves nothing', async () => {
    const { gateway, request, store } = setup();
    // Too large to fit at all: refused whole, nothing reserved.
    const refused = await gateway.decide(request(5000));
    expect(refused.deny?.reason).to.equal('budget_exhausted');
    expect(refused).not.to.have.property('allow');
    expect((await store.readBudget(KEY, T0)).reserved).to.equal(0);
  });

  it('hands ext_proc the output limit to write: the default when the request names none', async () => {
    const { gateway, request } = setup();
    const given = await gateway.decide(request(100));
    expect(handoffOf(given)).not.to.have.property('outputLimit');
    const none = await gateway.decide({
      ...request(0, 'req-2'),
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], n: 2, stream: true }),
    });
    const handoff = handoffOf(none);
    expect(handoff?.outputLimit).to.equal(100); // the helpers' defaultMaxOutputTokens
    expect(handoff?.injectUsage).to.equal(true);
    expect(handoff?.reservation?.reserved).to.deep.equal([9 + 2 * 100]);
  });

  it('leaves a reservation nobody settles to expire in the store', async () => {
    const { gateway, request, store, tick } = setup();
    await gateway.decide(request(100, 'lost'));
    expect((await store.readBudget(KEY, T0)).reserved).to.be.greaterThan(0);
    tick(16 * 60_000); // past metering.reservationTtlSeconds (900 s by default)
    const state = await store.readBudget(KEY, T0 + 16 * 60_000);
    expect(state).to.deep.equal({ used: 0, reserved: 0 });
  });

  it('gives back the reservation and the slot of a request that fails after admission', async () => {
    const store = new MemoryStore();
    const base = config([budget({ tenant: 'acme', maxTokens: 1000 })]);
    const cfg = { ...base, rateLimits: [{ name: 'streams', match: { claims: {} }, maxConcurrent: 1, key: 'user' }] };
    const { logger, lines } = logSink();
    const steps = checkSteps({
      verifier: { authenticate: () => Promise.resolve(identity()) },
      authorize: new AuthorizeStep(cfg.authorization),
      planners: [new RateLimitPlanner(cfg), new BudgetPlanner(cfg)],
      store,
      responder: new Responder(cfg, { tenants: {} }),
    });
    let failing = true;
    // The last step (hand-off) breaking, as a bug or a lost dependency would.
    const broken = steps.map((step) =>
      step.name !== 'hand-off' ? step : { ...step, run: (c: Parameters<typeof step.run>[0]) => (failing ? Promise.reject(new Error('boom')) : step.run(c)) },
    );
    const gateway = new CheckFlow({ config: cfg, steps: broken, logger, now: () => T0 });
    const req = {
      id: 'req-1',
      method: 'POST',
      path: '/v1/chat/completions',
      headers: { authorization: 'Bearer stub.verified.token-for-the-gateway-test', 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: 100 }),
    };
    expect((await gateway.decide(req)).deny?.reason).to.equal('internal_error');
    expect(await store.readBudget(KEY, T0)).to.deep.equal({ used: 0, reserved: 0 });
    expect(await store.readBudget('cc:streams:ann%40myorg.com', T0)).to.deep.equal({ used: 0, reserved: 0 });
    failing = false;
    expect((await gateway.decide(req)).allow).to.not.equal(undefined);
    // Allowed, it holds its slot (ext_proc frees it): the next one is refused.
    expect((await gateway.decide(req)).deny?.reason).to.equal('concurrency_limited');
    expect(lines.filter((l) => l['msg'] === 'decision failed')).to.have.length(1);
  });
});
