/**
 * The Owners view and the Me page's daily usage: who may see which tenant, and the numbers the
 * pages show against the usage book and the budget counters.
 */
import { expect } from 'chai';
import type { Identity } from '../../../src/domain/identity.js';
import { ownerScope, tenantFor } from '../../../src/portal/owners.js';
import { MemoryUsageBook, type UsageTally } from '../../../src/store/usage-book.js';
import { MemoryStore } from '../../../src/store/memory.js';
import { budgetKey } from '../../../src/budgets/planner.js';
import { periodWindow } from '../../../src/budgets/period.js';
import { DEFAULT_DAILY_USAGE } from '../../../src/config/schema.js';
import { testConfig } from '../../helpers/unit.js';
import { ADA, PORTAL, portalWith, request } from './fakes.js';

const OWNERS = { groups: ['platform'], tenantGroups: ['leads'] };
const who = (groups: string[], tenant?: string): Identity => ({ ...ADA, groups, ...(tenant !== undefined ? { tenant } : {}) });

describe('portal: Owners view', () => {
  it('scopes by group: platform sees every tenant, leads their own, others nothing', () => {
    expect(ownerScope(OWNERS, who(['platform']))).to.deep.equal({ all: true });
    expect(ownerScope(OWNERS, who(['leads'], 'acme'))).to.deep.equal({ all: false, tenant: 'acme' });
    expect(ownerScope(OWNERS, who(['leads']))).to.equal(undefined);
    expect(ownerScope(OWNERS, who(['dev'], 'acme'))).to.equal(undefined);
    expect(ownerScope(undefined, who(['platform']))).to.equal(undefined);
    expect(ownerScope({ groups: [], tenantGroups: ['*'] }, who([], 'acme'))).to.deep.equal({ all: false, tenant: 'acme' });
    expect(tenantFor({ all: false, tenant: 'acme' }, 'globex', [])).to.equal(undefined);
    expect(tenantFor({ all: false, tenant: 'acme' }, null, [])).to.equal('acme');
    expect(tenantFor({ all: true }, null, ['beta', 'zeta'])).to.equal('beta');
    expect(tenantFor({ all: true }, 'zeta', ['beta'])).to.equal('zeta');
  });

  describe('routes', () => {
    const now = Date.now();
    const day = periodWindow('day', 'UTC', now).id;
    const book = new MemoryUsageBook();
    const store = new MemoryStore();
    const config = testConfig({ tokenBudgets: [{ tenant: 'acme', maxTokens: 10_000, period: 'month', timeZone: 'UTC' }] });
    const { portal, call } = portalWith({
      config: { ...PORTAL, owners: OWNERS },
      me: () => ({ config, allowedModels: () => [], counters: store }),
      usage: () => ({ book, days: DEFAULT_DAILY_USAGE }),
    });
    const cookie = '__Host-tollgate_portal';
    const as = (identity: Identity): string => `${cookie}=${portal.sessions.put({ identity, token: 't', csrf: 'c' })}`;
    const tally = (over: Partial<UsageTally>): UsageTally => ({
      day, tenant: 'acme', user: 'ada@example.com', model: 'gpt-4o-mini', inputTokens: 0, outputTokens: 0, estimatedTokens: 0, costMicros: 0, expiresAtMs: now + 86_400_000, ...over,
    });

    before(async () => {
      await book.tally(tally({ inputTokens: 300, outputTokens: 100, estimatedTokens: 400 }));
      await book.tally(tally({ user: 'bob@example.com', model: 'gpt-4o', inputTokens: 1000, outputTokens: 600, costMicros: 2_500_000 }));
      await book.tally(tally({ tenant: 'globex', user: '<script>alert(1)</script>', inputTokens: 5 }));
      // The tenant budget's counter: what is left comes from here, not from the book.
      const key = budgetKey(config.tokenBudgets[0]!, periodWindow('month', 'UTC', now));
      await store.admit({ windows: [], budgets: [{ key, limit: 10_000, amount: 2000, minAmount: 1, expiresAtMs: now + 1e10 }], reservationId: 'r', ttlMs: 60_000 }, now);
      await store.settle([{ key, expiresAtMs: now + 1e10 }], 'r', [2000], now);
    });

    it("shows a lead their tenant's users, models, budget and days, and refuses another tenant", async () => {
      const lead = as(who(['leads'], 'acme'));
      const page = await call(request('GET', '/owners', { cookie: lead }));
      expect(page.status).to.equal(200);
      expect(page.headers['content-security-policy']).to.include("script-src 'self'");
      expect(page.body).to.match(/<span id="owners-tenant">acme<\/span>/);
      // Top users: bob (1,600 tokens) before ada (400, all estimated).
      const users = [...page.body.matchAll(/<tr><td>([^<]+)<\/td><td><data value="\d+" class="requests">/g)].map((m) => m[1]);
      expect(users.slice(0, 2)).to.deep.equal(['bob@example.com', 'ada@example.com']);
      expect(page.body).to.include('<data value="2000" class="tokens">2,000</data>');
      expect(page.body).to.include('20.0 %'); // 400 estimated of 2,000
      expect(page.body).to.include('$2.5');
      expect(page.body).to.include('<data value="2000" class="used">2,000</data>');
      expect(page.body).to.include('<data value="8000" class="remaining">8,000</data>');
      expect(page.body).to.include('id="burn-0"');
      expect(page.body).to.not.include('globex');
      expect((await call(request('GET', '/owners?tenant=globex', { cookie: lead }))).status).to.equal(403);
    });

    it('lets the platform group pick any tenant, escaping what the book holds', async () => {
      const admin = as(who(['platform'], 'acme'));
      const page = await call(request('GET', '/owners?tenant=globex', { cookie: admin }));
      expect(page.status).to.equal(200);
      expect(page.body).to.include('href="/owners?tenant=acme"');
      expect(page.body).to.not.include('<script>alert');
      expect(page.body).to.include('&#60;script&#62;alert(1)&#60;/script&#62;');
    });

    it('refuses everybody else, and sends the signed-out to sign in', async () => {
      expect((await call(request('GET', '/owners', { cookie: as(who(['dev'], 'acme')) }))).status).to.equal(403);
      const out = await call(request('GET', '/owners'));
      expect(out.status).to.equal(303);
      expect(out.headers['location']).to.equal('/');
    });

    it("shows on the Me page the user's own days only, and the link only to owners", async () => {
      const me = await call(request('GET', '/', { cookie: as(who(['dev'], 'acme')) }));
      expect(me.body).to.include('id="daily-chart"');
      expect(me.body).to.include(`<td>${day}</td><td><data value="1" class="requests">1</data>`);
      expect(me.body).to.include('<data value="400" class="tokens">400</data>');
      expect(me.body).to.not.include('bob@example.com');
      expect(me.body).to.not.include('owners-link');
      expect((await call(request('GET', '/', { cookie: as(who(['leads'], 'acme')) }))).body).to.include('id="owners-link"');
    });
  });
});
