/** The explain engine on the README's Okta policy: decisions, traces, limits, headers; and the peek store. */
import { readFile } from 'node:fs/promises';
import { expect } from 'chai';
import { parseConfig } from '../../../src/config/load.js';
import { Explainer } from '../../../src/cli/explain.js';
import { formatExplanation, traceLine } from '../../../src/cli/explain-command.js';
import { MemoryStore } from '../../../src/store/memory.js';
import { PeekStore } from '../../../src/store/peek.js';

const OKTA = 'examples/policy-tests/okta.yaml';
const chat = (model: string) => JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] });

describe('cli/explain: the live Check, explained', () => {
  let explainer: Explainer;
  before(async () => {
    explainer = new Explainer(parseConfig(await readFile(OKTA, 'utf8'), OKTA));
  });

  it('names the denying rule and why each earlier rule did not match', async () => {
    const e = await explainer.explain({
      caller: { claims: { sub: 'ann', groups: ['support'], team: 'support' } },
      method: 'POST',
      path: '/v1/chat/completions',
      body: chat('gpt-4o'),
    });
    expect(e).to.include({ decision: 'deny', status: 403, reason: 'model_not_allowed', rule: 'other-models' });
    expect(e.rules.map((t) => t.rule)).to.deep.equal([
      'teams-may-list-models', 'ml-research-everything', 'trial-no-gpt41-for-product',
      'product-eng-models', 'support-small-chat', 'other-models',
    ]);
    expect(traceLine(e.rules[4]!)).to.equal('support-small-chat: no match: model is "gpt-4o", rule wants "gpt-4o-mini*"');
    expect(e.response?.headers['x-tollgate-reason']).to.equal('model_not_allowed');
    expect(e.response?.body).to.deep.include({ error: { message: e.message, type: 'permission_denied', param: null, code: 'model_not_allowed' } });
    expect(e.models).to.deep.equal(['gpt-4o-mini']);
  });

  it('an allow: the shadow rule, limits with keys, identity headers with the key redacted', async () => {
    const e = await explainer.explain({
      caller: { claims: { sub: 'bob', groups: ['product-eng'], team: 'product-eng' } },
      method: 'POST',
      path: '/v1/chat/completions',
      body: chat('gpt-4.1'),
    });
    expect(e).to.include({ decision: 'allow', status: 200, reason: 'allowed', rule: 'product-eng-models' });
    expect(e.shadowDenied).to.deep.equal({ rule: 'trial-no-gpt41-for-product', reason: 'model_not_allowed' });
    expect(e.limits.map((l) => [l.kind, l.name, l.key.split(':').slice(0, 3).join(':')])).to.deep.equal([
      ['rate-limit', 'per-user', 'rl:per-user:bob'],
      ['budget', 'tenant:product-eng', 'tb:tenant:product-eng'],
    ]);
    expect(e.upstreamHeaders).to.include({ 'x-user-id': 'bob', 'x-tenant-id': 'product-eng', authorization: 'Bearer [redacted]' });
  });

  it('counts nothing: the same request twice sees the same remaining', async () => {
    const req = { caller: { claims: { sub: 'cy', groups: ['support'], team: 'support' } }, method: 'POST', path: '/v1/chat/completions', body: chat('gpt-4o-mini') };
    const a = await explainer.explain(req);
    const b = await explainer.explain(req);
    expect(a.limits.map((l) => l.remaining)).to.deep.equal(b.limits.map((l) => l.remaining));
  });

  it('GET /v1/tollgate/whoami: the answer the sidecar would give, with the counters it would read', async () => {
    const e = await explainer.explain({ caller: { claims: { sub: 'bob', groups: ['product-eng'], team: 'product-eng' } }, method: 'GET', path: '/v1/tollgate/whoami' });
    expect(e).to.include({ decision: 'answer', status: 200, reason: 'whoami' });
    const view = e.response?.body as { identity: { user: string }; rateLimits: { name: string }[]; budgets: { name: string }[] };
    expect(view.identity.user).to.equal('bob');
    expect(view.rateLimits.map((l) => l.name)).to.include('per-user');
    expect(view.budgets.map((b) => b.name)).to.deep.equal(['tenant:product-eng']);
    expect(e.limits).to.deep.equal([]);
  });

  it('no caller: the live 401', async () => {
    const e = await explainer.explain({ caller: { anonymous: true }, method: 'GET', path: '/v1/models' });
    expect(e).to.include({ decision: 'deny', status: 401, reason: 'missing_token' });
    expect(e.rules).to.deep.equal([]);
  });
});

describe('cli/explain: a concurrency limit', () => {
  it('shows the bucket with its requests in flight, and the refusal when no slot is free', async () => {
    const text = (await readFile(OKTA, 'utf8')).replace(/^rateLimits:\n/m, 'rateLimits:\n  - { name: streams, maxConcurrent: 2 }\n');
    const config = parseConfig(text, OKTA);
    const counters = new MemoryStore();
    const explainer = new Explainer(config, { counters });
    const req = { caller: { claims: { sub: 'bob', groups: ['product-eng'], team: 'product-eng' } }, method: 'POST', path: '/v1/chat/completions', body: chat('gpt-4.1') };
    const slot = { key: 'cc:streams:bob', limit: 2, amount: 1, minAmount: 1, expiresAtMs: Date.now() + 600_000 };
    await counters.admit({ windows: [], budgets: [slot], reservationId: 'held-1', ttlMs: 600_000 }, Date.now());
    const e = await explainer.explain(req);
    expect(e.decision).to.equal('allow');
    expect(e.limits.find((l) => l.kind === 'concurrency')).to.deep.equal({ kind: 'concurrency', name: 'streams', key: 'cc:streams:bob', limit: 2, current: 1, remaining: 0, refused: false });
    expect(formatExplanation(e)).to.include('concurrency streams [cc:streams:bob]: limit 2, in flight 1, remaining 0');
    await counters.admit({ windows: [], budgets: [slot], reservationId: 'held-2', ttlMs: 600_000 }, Date.now());
    const refused = await explainer.explain(req);
    expect(refused).to.include({ decision: 'deny', status: 429, reason: 'concurrency_limited', rule: 'streams' });
    expect(refused.limits.find((l) => l.kind === 'concurrency')).to.include({ current: 2, refused: true });
    expect(refused.response?.headers).to.include({ 'retry-after': '1', 'x-tollgate-reason': 'concurrency_limited' });
  });
});

describe('store/peek: reads counters, answers like the store, writes nothing', () => {
  const win = { key: 'rl:a:x', limit: 2, windowMs: 60_000 };
  const budget = { key: 'tb:user:x:p', limit: 100, amount: 30, minAmount: 30, expiresAtMs: 10_000_000 };
  const req = { windows: [win], budgets: [budget], reservationId: 'r', ttlMs: 60_000 };

  it('matches what the memory store would answer, and leaves it unchanged', async () => {
    const memory = new MemoryStore();
    await memory.admit({ ...req, reservationId: 'earlier' }, 1000);
    const peeked = await new PeekStore(memory).admit(req, 2000);
    expect(await memory.readWindow('rl:a:x', 2000)).to.deep.include({ count: 1 });
    expect(await memory.readBudget(budget.key, 2000)).to.deep.equal({ used: 0, reserved: 30 });
    const real = await memory.admit(req, 2000);
    expect(peeked).to.deep.equal(real);
    const refused = await new PeekStore(memory).admit(req, 2000);
    expect(refused).to.deep.equal(await memory.admit(req, 2000));
    expect(refused.allowed).to.equal(false);
  });
});
