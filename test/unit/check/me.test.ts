/**
 * The "Me" view (check/me.ts) and the whoami step (check/whoami.ts): which rules, limits and
 * budgets apply to given claims, the counters read as they stand and never counted, and the
 * answer the Check gives for `GET /v1/tollgate/whoami`.
 */
import { expect } from 'chai';
import { AuthorizeStep } from '../../../src/check/authorize.js';
import { CheckFlow, checkSteps } from '../../../src/check/flow.js';
import { describeCaller, modelCandidates, type MeSources } from '../../../src/check/me.js';
import { Responder } from '../../../src/check/respond.js';
import { WHOAMI_PATH } from '../../../src/check/whoami.js';
import { BudgetPlanner } from '../../../src/budgets/planner.js';
import { parseConfig } from '../../../src/config/load.js';
import type { Config } from '../../../src/config/schema.js';
import type { Identity } from '../../../src/domain/identity.js';
import { toCheckResponse } from '../../../src/edge/authz-adapter.js';
import { RateLimitPlanner } from '../../../src/limits/rate-limit.js';
import { MemoryStore } from '../../../src/store/memory.js';
import { whoamiUrl } from '../../../src/cli/whoami.js';
import { logSink } from '../../helpers/unit.js';

const T0 = Date.UTC(2026, 10, 15, 12);

const CONFIG = `
authentication:
  - provider: { name: idp, issuer: https://idp.example.com, clientId: gw }
upstream: { apiKey: { env: WHOAMI_TEST_KEY } }
authorization:
  default: deny
  rules:
    - { name: no-contractors, match: { claims: { groups: [contractors] } }, action: deny }
    - name: ml-models
      match: { models: [gpt-4o, "o*"], claims: { groups: [ml], department: [research] } }
      action: allow
    - { name: trial, match: { path: /v1/embeddings, claims: { tenant: [acme] } }, action: allow, mode: shadow }
rateLimits:
  - { name: per-user, match: { path: "/v1/*" }, requestsPerUnit: 5, unit: minute }
  - { name: per-team, match: { claims: { groups: "team-*" } }, requestsPerUnit: 3, unit: hour, key: groups }
  - { name: per-tenant, match: { path: /v1/chat/completions }, requestsPerUnit: 9, unit: day, key: tenant }
  - { name: others, match: { claims: { groups: [sales] } }, requestsPerUnit: 1, unit: minute }
tokenBudgets:
  - { tenant: acme, maxTokens: 1000, period: month }
  - { group: ml, maxTokens: 500, period: day }
  - { user: alice@example.com, maxTokens: 200, period: week }
  - { tenant: globex, maxTokens: 9999, period: month }
  - { user: bob@example.com, maxTokens: 1, period: day }
`;

function identity(over: Partial<Identity> = {}): Identity {
  return {
    provider: 'idp',
    issuer: 'https://idp.example.com',
    subject: 'u-1',
    user: 'alice@example.com',
    groups: ['ml', 'team-a', 'team-b'],
    tenant: 'acme',
    claims: {
      iss: 'https://idp.example.com',
      sub: 'u-1',
      email: 'alice@example.com',
      department: 'research',
      nonce: 'n-0S6_WzA2Mj',
      sid: 'session-secret',
      exp: T0 / 1000 + 3600,
    },
    expiresAt: T0 / 1000 + 3600,
    ...over,
  };
}

function setup(text = CONFIG) {
  const config: Config = parseConfig(text);
  const store = new MemoryStore();
  const authorize = new AuthorizeStep(config.authorization, { budgets: true });
  const sources: MeSources = {
    config,
    allowedModels: (id, candidates) => authorize.allowedModels(id, candidates),
    counters: store,
  };
  const { logger, lines } = logSink();
  const flow = (whoamiOn = true) =>
    new CheckFlow({
      config,
      steps: checkSteps({
        verifier: { authenticate: () => Promise.resolve(identity()) },
        authorize,
        planners: [new RateLimitPlanner(config), new BudgetPlanner(config)],
        store,
        responder: new Responder(config, { apiKey: 'sk-never-shown', tenants: {} }),
        ...(whoamiOn ? { me: sources } : {}),
      }),
      logger,
      now: () => T0,
    });
  return { config, store, sources, flow, lines };
}

const chat = (id: string) => ({
  id,
  method: 'POST',
  path: '/v1/chat/completions',
  headers: { authorization: 'Bearer a.b.c', 'content-type': 'application/json' },
  body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], max_tokens: 10 }),
});
const whoami = (method = 'GET', path = WHOAMI_PATH) => ({ id: 'w-1', method, path, headers: { authorization: 'Bearer a.b.c' } });

describe('check/me: the caller\'s own view', () => {
  it('names the rules that could apply to the caller, with the request scope only for those', async () => {
    const { sources } = setup();
    const view = await describeCaller(sources, identity(), T0);
    expect(view.rules).to.deep.equal([
      { name: 'no-contractors', action: 'deny', mode: 'enforce', applies: false },
      {
        name: 'ml-models',
        action: 'allow',
        mode: 'enforce',
        applies: true,
        claimsUsed: { groups: 'ml', department: 'research' },
        requests: { models: ['gpt-4o', 'o*'] },
      },
      { name: 'trial', action: 'allow', mode: 'shadow', applies: true, claimsUsed: { tenant: 'acme' }, requests: { path: '/v1/embeddings' } },
    ]);
    expect(view.authorization).to.deep.equal({ default: 'deny', mode: 'enforce' });
    const other = await describeCaller(sources, identity({ groups: ['contractors'], tenant: 'globex' }), T0);
    expect(other.rules.map((r) => [r.name, r.applies])).to.deep.equal([['no-contractors', true], ['ml-models', false], ['trial', false]]);
    // A rule that does not apply shows no claim globs: other groups' names stay out.
    expect(JSON.stringify(other.rules)).to.not.include('ml"').and.not.include('research');
  });

  it('lists the models the rules allow the caller, over the rules\' literal models, the priced ones and OpenAI\'s', async () => {
    const { sources, config } = setup();
    const candidates = modelCandidates(config);
    expect(candidates).to.include('gpt-4o').and.include('o3-mini').and.not.include('o*');
    const view = await describeCaller(sources, identity(), T0);
    expect(view.models).to.include('gpt-4o').and.include('o3-mini').and.not.include('gpt-4o-mini');
    expect(view.models.every((m) => m === 'gpt-4o' || m.startsWith('o'))).to.equal(true);
    const outsider = await describeCaller(sources, identity({ groups: [] }), T0);
    expect(outsider.models).to.deep.equal([]);
  });

  it('shows the claims the rules and limits read and the basics, never nonces, session ids or an unverified email', async () => {
    const { sources } = setup();
    const view = await describeCaller(sources, identity(), T0);
    expect(view.claims).to.deep.equal({
      iss: 'https://idp.example.com',
      sub: 'u-1',
      email: 'alice@example.com',
      exp: T0 / 1000 + 3600,
      department: 'research',
    });
    const unverified = identity({ claims: { ...identity().claims, email_verified: false } });
    expect((await describeCaller(sources, unverified, T0)).claims).to.not.have.property('email');
    expect(view.identity).to.deep.equal({
      provider: 'idp',
      issuer: 'https://idp.example.com',
      subject: 'u-1',
      user: 'alice@example.com',
      groups: ['ml', 'team-a', 'team-b'],
      tenant: 'acme',
      expiresAt: new Date(T0 + 3_600_000).toISOString(),
    });
  });

  it('reads the rate-limit buckets and budgets that count the caller, as admission left them, and counts nothing', async () => {
    const { sources, flow, store } = setup();
    const gateway = flow();
    for (const id of ['r1', 'r2']) expect((await gateway.decide(chat(id))).allow, id).to.not.equal(undefined);
    const first = await describeCaller(sources, identity(), T0 + 1000);
    expect(first.rateLimits.map((l) => [l.name, l.buckets.map((b) => [b.key, b.count, b.remaining])])).to.deep.equal([
      ['per-user', [['rl:per-user:alice%40example.com', 2, 3]]],
      ['per-team', [['rl:per-team:team-a', 2, 1], ['rl:per-team:team-b', 2, 1]]],
      ['per-tenant', [['rl:per-tenant:acme', 2, 7]]],
    ]);
    expect(first.rateLimits[0]).to.include({ key: 'user', requestsPerUnit: 5, unit: 'minute' });
    expect(first.rateLimits[0]?.requests).to.deep.equal({ path: '/v1/*' });
    expect(first.rateLimits[0]?.buckets[0]?.resetsAt).to.equal(new Date(T0 + 60_000).toISOString());
    // Two reservations, unsettled: all of it is reserved, nothing used yet.
    expect(first.budgets.map((b) => [b.name, b.used, b.limit])).to.deep.equal([
      ['tenant:acme', 0, 1000],
      ['group:ml', 0, 500],
      ['user:alice@example.com', 0, 200],
    ]);
    const reserved = first.budgets[0]?.reserved ?? 0;
    expect(reserved).to.be.greaterThan(0);
    expect(first.budgets.map((b) => b.reserved)).to.deep.equal([reserved, reserved, reserved]);
    expect(first.budgets[0]).to.include({ remaining: 1000 - reserved, period: 'month', periodId: '2026-11' });

    const again = await describeCaller(sources, identity(), T0 + 1000);
    expect(again.rateLimits).to.deep.equal(first.rateLimits);
    expect(again.budgets).to.deep.equal(first.budgets);
    // The windows still have exactly the room two requests left: the reads hit nothing.
    expect((await store.readWindow('rl:per-user:alice%40example.com', T0 + 1000)).count).to.equal(2);
    expect(await store.readBudget('tb:tenant:acme:2026-11', T0 + 1000)).to.deep.equal({ used: 0, reserved });
  });

  it('shows a caller without the key\'s claim the shared bucket it counts in, and only its own budgets', async () => {
    const { sources } = setup();
    const view = await describeCaller(sources, identity({ user: 'bob@example.com', groups: [], tenant: undefined, claims: {} }), T0);
    expect(view.rateLimits.map((l) => [l.name, l.buckets.map((b) => b.key)])).to.deep.equal([
      ['per-user', ['rl:per-user:bob%40example.com']],
      ['per-tenant', ['rl:per-tenant']],
    ]);
    expect(view.budgets.map((b) => b.name)).to.deep.equal(['user:bob@example.com']);
    expect(view.identity).to.not.have.property('tenant');
  });

  it('says "count not readable" by leaving out counts when the store cannot read windows', async () => {
    const { config, sources } = setup();
    const view = await describeCaller({ ...sources, counters: { readBudget: () => Promise.resolve({ used: 0, reserved: 0 }) } }, identity(), T0);
    expect(view.rateLimits[0]?.buckets).to.deep.equal([{ key: 'rl:per-user:alice%40example.com' }]);
    expect(config.rateLimits).to.have.length(4);
  });
});

describe('check/whoami: the step that answers GET /v1/tollgate/whoami', () => {
  it('answers with HTTP 200 and the view as JSON, counting nothing, and writes an `answer` audit line', async () => {
    const { flow, store, lines } = setup();
    const gateway = flow();
    await gateway.decide(chat('r1'));
    const decision = await gateway.decide(whoami());
    expect(decision.deny).to.include({ status: 200, reason: 'whoami' });
    expect(decision.deny?.headers).to.include({ 'cache-control': 'no-store', 'x-request-id': 'w-1' });
    const view = JSON.parse(decision.deny?.body ?? '{}') as { rateLimits: { buckets: { count: number }[] }[] };
    expect(view.rateLimits[0]?.buckets[0]?.count).to.equal(1);
    await gateway.decide(whoami());
    expect((await store.readWindow('rl:per-user:alice%40example.com', T0)).count).to.equal(1);
    const audit = lines.filter((l) => l['audit'] === 'decision' && l['path'] === WHOAMI_PATH);
    expect(audit).to.have.length(2);
    expect(audit[0]).to.include({ decision: 'answer', status: 200, reason: 'whoami', user: 'alice@example.com', msg: 'answer whoami' });
    expect(JSON.stringify(lines)).to.not.include('sk-never-shown');

    // Envoy gets a denied_response (a non-zero code) with status 200 and the view as its body.
    const response = toCheckResponse(decision);
    expect(response.status?.code).to.not.equal(0);
    expect(response.denied_response?.status?.code).to.equal(200);
    expect(JSON.parse(String(response.denied_response?.body))).to.deep.equal(JSON.parse(decision.deny?.body ?? ''));
    const headers = Object.fromEntries((response.denied_response?.headers ?? []).map((h) => [h.header?.key, h.header?.value]));
    expect(headers).to.include({ 'content-type': 'application/json', 'x-tollgate-reason': 'whoami' });
  });

  it('leaves other methods, other paths and a disabled whoami to the ordinary Check', async () => {
    const { flow } = setup();
    const on = flow();
    // Ordinary requests: judged by the rules (default deny), never answered.
    expect((await on.decide(whoami('POST'))).deny?.reason).to.equal('access_denied');
    expect((await on.decide(whoami('GET', '/v1/tollgate/whoami/x'))).deny?.reason).to.equal('access_denied');
    expect((await on.decide(whoami('GET', '/V1/Tollgate/WhoAmI'))).deny?.reason).to.equal('whoami');
    const off = flow(false);
    expect((await off.decide(whoami())).deny?.reason).to.equal('access_denied');
  });

  it('is on by default; `server.whoami: false` turns it off and anything but a boolean is refused', () => {
    const base = 'authentication:\n  - provider: { name: idp, issuer: https://idp.example.com, clientId: gw }\nupstream: { apiKey: { env: WHOAMI_TEST_KEY } }\n';
    expect(parseConfig(base).server.whoami).to.equal(undefined);
    expect(parseConfig(`server: { whoami: true }\n${base}`).server.whoami).to.equal(undefined);
    expect(parseConfig(`server: { whoami: false }\n${base}`).server.whoami).to.equal(false);
    expect(() => parseConfig(`server: { whoami: "no" }\n${base}`)).to.throw(/server\.whoami.*expected true or false/s);
  });
});

describe('cli/whoami: the URL it asks', () => {
  it('takes the SDKs\' base URL with or without /v1 and trailing slashes', () => {
    for (const base of ['http://gw:10000', 'http://gw:10000/', 'http://gw:10000/v1', 'http://gw:10000/v1/', 'http://gw:10000/v1?x=1']) {
      expect(whoamiUrl(base).href, base).to.equal('http://gw:10000/v1/tollgate/whoami');
    }
    expect(whoamiUrl('https://ai.example.com/openai/v1').href).to.equal('https://ai.example.com/openai/v1/tollgate/whoami');
  });
});
