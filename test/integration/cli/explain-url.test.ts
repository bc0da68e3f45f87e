/**
 * `tollgate explain --url`: `GET /counters` on the real metrics listener (port 0) over a memory
 * store, read by the HTTP counter reader (cli/sidecar-counters.ts) and the explain command.
 */
import { readFile } from 'node:fs/promises';
import { expect } from 'chai';
import { budgetKey } from '../../../src/budgets/planner.js';
import { periodWindow } from '../../../src/budgets/period.js';
import { budgetRoute } from '../../../src/budgets/view.js';
import { explainCommand } from '../../../src/cli/explain-command.js';
import { Explainer, type Explanation } from '../../../src/cli/explain.js';
import { SidecarCounters } from '../../../src/cli/sidecar-counters.js';
import { parseConfig } from '../../../src/config/load.js';
import type { Config } from '../../../src/config/schema.js';
import { bucketKey } from '../../../src/limits/rate-limit.js';
import { countersRoute, MAX_COUNTER_KEYS } from '../../../src/server/counters.js';
import { budgetCommand, METRICS_TOKEN_ENV } from '../../../src/cli/budget.js';
import { requireToken, startMetricsServer, type MetricsServer } from '../../../src/server/metrics-http.js';
import { MemoryStore } from '../../../src/store/memory.js';
import { Metrics } from '../../../src/telemetry/metrics.js';

const OKTA = 'examples/policy-tests/okta.yaml';
const BOB = ['--claims', JSON.stringify({ sub: 'bob', groups: ['product-eng'], team: 'product-eng' }), '--model', 'gpt-4o'];

function capture() {
  let text = '';
  return { write: (c: string) => (text += c), get text() { return text; } };
}

describe('cli/explain --url: counters from a running sidecar', function () {
  this.timeout(20_000);
  let cfg: Config;
  let store: MemoryStore;
  let metrics: Metrics;
  let server: MetricsServer;
  let older: MetricsServer;
  let guarded: MetricsServer;
  let token: string | undefined = 'f00dfeedf00dfeedf00dfeed';
  let budget: string;
  const window = bucketKey('per-user', 'bob');

  before(async () => {
    cfg = parseConfig(await readFile(OKTA, 'utf8'), OKTA);
    const b = cfg.tokenBudgets[0]!;
    const now = Date.now();
    budget = budgetKey(b, periodWindow(b.period, b.timeZone, now));
    store = new MemoryStore();
    for (let i = 0; i < 7; i++) {
      await store.admit({ windows: [{ key: window, limit: 120, windowMs: 60_000 }], budgets: [], reservationId: `w${i}`, ttlMs: 60_000 }, now);
    }
    await store.admit(
      { windows: [], budgets: [{ key: budget, limit: 50_000_000, amount: 1234, minAmount: 1234, expiresAtMs: now + 86_400_000 }], reservationId: 'r1', ttlMs: 600_000 },
      now,
    );
    await store.settle([{ key: budget, expiresAtMs: now + 86_400_000 }], 'r1', [4321], now);
    await store.admit(
      { windows: [], budgets: [{ key: budget, limit: 50_000_000, amount: 99, minAmount: 99, expiresAtMs: now + 86_400_000 }], reservationId: 'r2', ttlMs: 600_000 },
      now,
    );
    metrics = new Metrics();
    server = await startMetricsServer('127.0.0.1:0', metrics, {
      '/counters': countersRoute({ config: () => cfg, counters: () => store }),
    });
    // A listener that serves /budget but predates /counters.
    older = await startMetricsServer('127.0.0.1:0', metrics, { '/budget': budgetRoute({ config: () => cfg, store: () => store }) });
    // server.metricsToken set: the data routes need it, /metrics and /healthz do not.
    guarded = await startMetricsServer('127.0.0.1:0', metrics, {
      '/budget': requireToken(() => token, budgetRoute({ config: () => cfg, store: () => store })),
      '/counters': requireToken(() => token, countersRoute({ config: () => cfg, counters: () => store })),
    });
  });

  after(async () => {
    await server?.close();
    await older?.close();
    await guarded?.close();
    delete process.env[METRICS_TOKEN_ENV];
    await metrics?.shutdown();
  });

  it('explains with the sidecar’s window and budget counters, as read from its store directly', async () => {
    const out = capture();
    const err = capture();
    expect(await explainCommand(['--config', OKTA, ...BOB, '--url', server.url, '--json'], out, err)).to.equal(0);
    expect(err.text).to.equal('');
    const e = JSON.parse(out.text) as Explanation;
    expect(e.decision).to.equal('allow');
    const rate = e.limits.find((l) => l.kind === 'rate-limit');
    const tokens = e.limits.find((l) => l.kind === 'budget');
    expect(rate).to.include({ key: window, current: 7, remaining: 120 - 8 });
    expect(tokens).to.include({ key: budget, current: 4321, reserved: 99 });
    // The same explanation as one reading the store itself.
    const direct = await new Explainer(cfg, { counters: store }).explain({
      caller: { claims: { sub: 'bob', groups: ['product-eng'], team: 'product-eng' } },
      method: 'POST',
      path: '/v1/chat/completions',
      body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'explain' }] }),
    });
    expect(e.limits.map((l) => ({ ...l, resetMs: undefined }))).to.deep.equal(direct.limits.map((l) => ({ ...l, resetMs: undefined })));

    const text = capture();
    expect(await explainCommand(['--config', OKTA, ...BOB, '--url', server.url.replace(/\/metrics$/, '')], text, capture())).to.equal(0);
    expect(text.text).to.include(`rate-limit per-user [${window}]: limit 120, hits 7, remaining 112`);
    expect(text.text).to.include(`used 4321 + reserved 99`);
  });

  it('reads more keys than one request may carry in batches, in order', async () => {
    const reader = new SidecarCounters(server.url);
    const keys = Array.from({ length: MAX_COUNTER_KEYS + 10 }, (_, i) => (i === MAX_COUNTER_KEYS + 3 ? window : bucketKey('per-user', `u${i}`)));
    const { windows, budgets } = await reader.readMany(keys, [budget], Date.now());
    expect(windows.map((w) => w.count)).to.deep.equal(keys.map((k) => (k === window ? 7 : 0)));
    expect(budgets).to.deep.equal([{ used: 4321, reserved: 99 }]);
    expect(await reader.readBudget(budget, Date.now())).to.deep.equal({ used: 4321, reserved: 99 });
    expect((await reader.readWindow(window, Date.now())).count).to.equal(7);
  });

  it('a clear error, exit 1, when the sidecar is not there, predates /counters or has another configuration', async () => {
    const down = capture();
    expect(await explainCommand(['--config', OKTA, ...BOB, '--url', 'http://127.0.0.1:1'], capture(), down)).to.equal(1);
    expect(down.text).to.match(/^tollgate explain: cannot reach http:\/\/127\.0\.0\.1:1 \(.*\); is the sidecar running with server\.metrics set\?\n$/);

    const old = capture();
    expect(await explainCommand(['--config', OKTA, ...BOB, '--url', older.url], capture(), old)).to.equal(1);
    expect(old.text).to.include('the sidecar predates GET /counters');

    const other = new SidecarCounters(server.url);
    let refused: unknown;
    await other.readWindow(bucketKey('not-configured', 'bob'), Date.now()).catch((err: unknown) => (refused = err));
    expect(String(refused)).to.include("the sidecar's /counters answered 404: window \"rl:not-configured:bob\": no rate limit of that name is configured");

    const bad = capture();
    expect(await explainCommand(['--config', OKTA, ...BOB, '--url', 'not a url'], capture(), bad)).to.equal(1);
    expect(bad.text).to.equal('tollgate explain: --url is not a URL: "not a url"\n');
  });

  it('server.metricsToken: /budget and /counters need the bearer token, /metrics and /healthz do not; the CLIs send TOLLGATE_METRICS_TOKEN', async () => {
    const base = guarded.url.replace(/\/metrics$/, '');
    const counters = `${base}/counters?window=${encodeURIComponent(window)}`;
    for (const path of ['/metrics', '/healthz']) expect((await fetch(`${base}${path}`)).status, path).to.equal(200);
    for (const url of [counters, `${base}/budget`]) {
      const none = await fetch(url);
      expect(none.status, url).to.equal(401);
      expect(none.headers.get('www-authenticate')).to.equal('Bearer realm="tollgate-metrics"');
      expect(await none.json()).to.deep.equal({ error: 'this route needs Authorization: Bearer <server.metricsToken>' });
      expect((await fetch(url, { headers: { authorization: 'Bearer f00dfeedf00dfeedf00dfeeX' } })).status, url).to.equal(401);
      expect((await fetch(url, { headers: { authorization: 'Basic f00dfeedf00dfeedf00dfeed' } })).status, url).to.equal(401);
      expect((await fetch(url, { headers: { authorization: 'Bearer f00dfeedf00dfeedf00dfeed' } })).status, url).to.equal(200);
    }

    delete process.env[METRICS_TOKEN_ENV];
    const refused = capture();
    expect(await explainCommand(['--config', OKTA, ...BOB, '--url', base], capture(), refused)).to.equal(1);
    expect(refused.text).to.include(`${base} wants its server.metricsToken: set TOLLGATE_METRICS_TOKEN to it (it is not set)`);
    const budgetRefused = capture();
    expect(await budgetCommand(['--url', base], capture(), budgetRefused)).to.equal(1);
    expect(budgetRefused.text).to.include('wants its server.metricsToken');

    process.env[METRICS_TOKEN_ENV] = 'f00dfeedf00dfeedf00dfeed';
    const out = capture();
    expect(await explainCommand(['--config', OKTA, ...BOB, '--url', base, '--json'], out, capture())).to.equal(0);
    expect((JSON.parse(out.text) as Explanation).limits.find((l) => l.kind === 'rate-limit')?.current).to.equal(7);
    expect(await budgetCommand(['--url', base, '--json'], capture(), capture())).to.equal(0);

    // Read per request: a reload that drops the token opens the routes at once.
    token = undefined;
    expect((await fetch(counters)).status).to.equal(200);
  });

  it('--store and --url together are a usage error', async () => {
    const err = capture();
    expect(await explainCommand(['--config', OKTA, ...BOB, '--url', server.url, '--store', 'redis://127.0.0.1:1'], capture(), err)).to.equal(2);
    expect(err.text).to.match(/^tollgate explain: give --store or --url, not both/);
  });
});
