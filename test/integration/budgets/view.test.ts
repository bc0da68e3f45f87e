/**
 * `GET /budget` mounted on the real metrics listener (port 0), and `tollgate budget` reading it.
 */
import { expect } from 'chai';
import { budgetCommand, budgetUrl, formatBudgetTable, humanDuration } from '../../../src/cli/budget.js';
import type { Config } from '../../../src/config/schema.js';
import { budgetRoute, type BudgetView } from '../../../src/budgets/view.js';
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
