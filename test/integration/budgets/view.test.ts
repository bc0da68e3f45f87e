/**
 * `GET /budget` mounted on the real metrics listener (port 0), and `tollgate budget` reading it.
 */
import { expect } from 'chai';
import { budgetCommand, budgetUrl, formatBudgetTable, humanDuration } from '../../../src/cli/budget.js';
import type { Config } from '../../../src/config/schema.js';
import { budgetRoute, readBudgets, type BudgetView } from '../../../src/budgets/view.js';
import { startMetricsServer, type MetricsServer } from '../../../src/server/metrics-http.js';
import { MemoryStore } from '../../../src/store/memory.js';
import type { Store } from '../../../src/store/store.js';
import { Metrics } from '../../../src/telemetry/metrics.js';
import { budget, config, T0 } from '../../unit/budgets/helpers.js';

function capture() {
  let text = '';
  return { write: (c: string) => (text += c), get text() { return text; } };
}

describe('budgets/view: GET /budget and tollgate budget', () => {
  const store = new MemoryStore();
  let live: Store = store;
  const cfg: Config = config([
    budget({ tenant: 'acme', maxTokens: 100_000 }),
    budget({ group: 'ml-team', maxTokens: 5_000, period: 'day', timeZone: 'Europe/Berlin' }),
  ]);
  let server: MetricsServer;
  let metrics: Metrics;
  let base: string;

  before(async () => {
    await store.admit({ windows: [], budgets: [{ key: 'tb:tenant:acme:2026-11', limit: 100_000, amount: 500, minAmount: 500, expiresAtMs: Date.UTC(2026, 11, 1) }], reservationId: 'r1', ttlMs: 600_000 }, T0);
    await store.admit({ windows: [], budgets: [{ key: 'tb:tenant:acme:2026-11', limit: 100_000, amount: 700, minAmount: 700, expiresAtMs: Date.UTC(2026, 11, 1) }], reservationId: 'r2', ttlMs: 600_000 }, T0);
    await store.settle([{ key: 'tb:tenant:acme:2026-11', expiresAtMs: Date.UTC(2026, 11, 1) }], 'r1', [321], T0);
    metrics = new Metrics();
    const route = budgetRoute({ config: () => cfg, store: () => live, now: () => T0 });
    server = await startMetricsServer('127.0.0.1:0', metrics, { '/budget': route });
    base = server.url.replace(/\/metrics$/, '');
  });

  after(async () => {
    await server?.close();
    await metrics?.shutdown();
  });

  it('answers the tenant’s used, reserved and remaining tokens for the current period', async () => {
    const res = await fetch(`${base}/budget?tenant=acme`);
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.equal('application/json');
    expect(await res.json()).to.deep.equal({
      budgets: [
        {
          subject: 'acme',
          kind: 'tenant',
          limit: 100_000,
          used: 321,
          reserved: 700,
          remaining: 100_000 - 321 - 700,
          period: 'month',
          timeZone: 'UTC',
          periodId: '2026-11',
          periodStart: '2026-11-01T00:00:00.000Z',
          resetsAt: '2026-12-01T00:00:00.000Z',
        },
      ],
    });
  });

  it('lists every budget without a filter, aligned to each one’s zone', async () => {
    const body = (await (await fetch(`${base}/budget`)).json()) as { budgets: BudgetView[] };
    expect(body.budgets.map((b) => `${b.kind}:${b.subject}`)).to.deep.equal(['tenant:acme', 'group:ml-team']);
    const group = body.budgets[1];
    // Midnight in Berlin (UTC+1 in November).
    expect(group).to.include({ used: 0, remaining: 5000, periodId: '2026-11-15', periodStart: '2026-11-14T23:00:00.000Z', resetsAt: '2026-11-15T23:00:00.000Z' });
  });

  it('404 for a subject without a budget, 400 for an unknown parameter', async () => {
    const missing = await fetch(`${base}/budget?user=nobody`);
    expect(missing.status).to.equal(404);
    expect(await missing.json()).to.deep.equal({ error: 'no token budget for user "nobody"' });
    expect((await fetch(`${base}/budget?team=x`)).status).to.equal(400);
    // /metrics is still served beside it.
    expect((await fetch(server.url)).status).to.equal(200);
  });

  it('503 when the store cannot be read', async () => {
    live = Object.assign(Object.create(store) as Store, { readBudget: () => Promise.reject(new Error('down')) });
    try {
      expect((await fetch(`${base}/budget?tenant=acme`)).status).to.equal(503);
    } finally {
      live = store;
    }
  });

  it('tollgate budget prints a table, or the JSON with --json', async () => {
    const out = capture();
    const err = capture();
    expect(await budgetCommand(['--tenant', 'acme', '--url', server.url], out, err)).to.equal(0);
    const [header, row] = out.text.trimEnd().split('\n');
    expect(header).to.match(/^BUDGET\s+PERIOD\s+LIMIT\s+USED\s+RESERVED\s+REMAINING\s+RESETS$/);
    expect(row).to.match(/^tenant:acme\s+month 2026-11\s+100,000\s+321\s+700\s+98,979\s+2026-12-01T00:00:00\.000Z \(in /);

    const json = capture();
    expect(await budgetCommand(['--group', 'ml-team', '--url', base, '--json'], json, err)).to.equal(0);
    expect((JSON.parse(json.text) as { budgets: BudgetView[] }).budgets[0]).to.include({ kind: 'group', subject: 'ml-team' });
    expect(err.text).to.equal('');
  });

  it('tollgate budget exits 1 for an unknown subject or an unreachable sidecar, 2 for bad flags', async () => {
    const err = capture();
    expect(await budgetCommand(['--user', 'nobody', '--url', base], capture(), err)).to.equal(1);
    expect(err.text).to.include('no token budget for user "nobody"');
    const down = capture();
    expect(await budgetCommand(['--url', 'http://127.0.0.1:1'], capture(), down)).to.equal(1);
    expect(down.text).to.include('cannot reach http://127.0.0.1:1');
    expect(await budgetCommand(['--team', 'x'], capture(), capture())).to.equal(2);
  });

  it('builds the /budget URL from a base or a /metrics URL', () => {
    expect(budgetUrl('http://h:9464', { tenant: ['a b'] }).href).to.equal('http://h:9464/budget?tenant=a+b');
    expect(budgetUrl('http://h:9464/metrics', { user: ['u'], group: ['g'] }).href).to.equal('http://h:9464/budget?group=g&user=u');
    expect(humanDuration(30_000)).to.equal('<1m');
    expect(humanDuration(3 * 86_400_000 + 4 * 3_600_000 + 59_000)).to.equal('3d4h');
    expect(humanDuration(2 * 3_600_000 + 5 * 60_000)).to.equal('2h5m');
    expect(formatBudgetTable([], T0)).to.match(/^BUDGET/);
  });
});

describe('budgets/view: budgets in money', () => {
  it('shows a cost budget in exact USD next to the tokens, and a cost-only one without token fields', async () => {
    const store = new MemoryStore();
    const end = Date.UTC(2026, 11, 1);
    const keys = ['tb:tenant:acme:2026-11', 'tc:tenant:acme:2026-11', 'tc:group:ml-team:2026-11'];
    await store.admit({
      windows: [],
      budgets: keys.map((key) => ({ key, limit: 500_000_000, amount: 1200, minAmount: 1200, expiresAtMs: end })),
      reservationId: 'r1',
      ttlMs: 600_000,
    }, T0);
    await store.settle(keys.map((key) => ({ key, expiresAtMs: end })), 'r1', [300, 87_654_321, 5], T0);
    await store.admit({ windows: [], budgets: [{ key: keys[1] ?? '', limit: 500_000_000, amount: 1200, minAmount: 1200, expiresAtMs: end }], reservationId: 'r2', ttlMs: 600_000 }, T0);
    const views = await readBudgets(
      [budget({ tenant: 'acme', maxTokens: 100_000, maxCostMicros: 500_000_000 }), budget({ group: 'ml-team', maxCostMicros: 20_000_000 })],
      store,
      T0,
    );
    expect(views[0]).to.include({ limit: 100_000, used: 300, reserved: 0, remaining: 99_700 });
    expect(views[0]?.cost).to.deep.equal({ currency: 'USD', limit: '500.000000', used: '87.654321', reserved: '0.001200', remaining: '412.344479' });
    expect(views[1]).to.not.have.any.keys('limit', 'used', 'reserved', 'remaining');
    expect(views[1]?.cost).to.deep.equal({ currency: 'USD', limit: '20.000000', used: '0.000005', reserved: '0.000000', remaining: '19.999995' });
    const table = formatBudgetTable(views, T0).split('\n');
    expect(table[0]).to.match(/^BUDGET\s+PERIOD\s+LIMIT\s+USED\s+RESERVED\s+REMAINING\s+COST LIMIT\s+COST USED\s+COST RESERVED\s+COST REMAINING\s+RESETS$/);
    expect(table[1]).to.match(/^tenant:acme\s+month 2026-11\s+100,000\s+300\s+0\s+99,700\s+\$500\.00\s+\$87\.654321\s+\$0\.0012\s+\$412\.344479\s+2026-12-01/);
    expect(table[2]).to.match(/^group:ml-team\s+month 2026-11\s+-\s+-\s+-\s+-\s+\$20\.00\s+\$0\.000005\s+\$0\.00\s+\$19\.999995\s+/);
  });
});
