/** `GET /counters` without HTTP: which keys it reads, which it refuses, and how it answers a store that fails. */
import { expect } from 'chai';
import { budgetKey } from '../../../src/budgets/planner.js';
import { periodWindow } from '../../../src/budgets/period.js';
import type { Config, RateLimitConfig, TokenBudgetConfig } from '../../../src/config/schema.js';
import { bucketKey } from '../../../src/limits/rate-limit.js';
import {
  budgetKeyRefusal,
  countersAnswer,
  MAX_COUNTER_KEYS,
  windowKeyRefusal,
  type CountersRouteDeps,
} from '../../../src/server/counters.js';
import { MemoryStore } from '../../../src/store/memory.js';
import type { CounterSource } from '../../../src/store/store.js';
import { testConfig } from '../../helpers/unit.js';

const T0 = Date.UTC(2026, 10, 15, 12);

const limit = (name: string, key = 'user'): RateLimitConfig => ({ name, match: { claims: {} }, requestsPerUnit: 3, unit: 'minute', key });
const BUDGETS: TokenBudgetConfig[] = [
  { tenant: 'acme', maxTokens: 1000, maxCostMicros: 5_000_000, period: 'month', timeZone: 'UTC' },
  { tenant: 'acme', maxTokens: 100, period: 'minute', timeZone: 'UTC' },
  { user: 'ann@acme.test', maxTokens: 50, period: 'day', timeZone: 'Europe/Berlin' },
  { group: 'ml: team', maxTokens: 70, period: 'week', timeZone: 'UTC' },
];
const cfg: Config = testConfig({ rateLimits: [limit('per-user'), limit('per group', 'groups')], tokenBudgets: BUDGETS });

/** The keys the planners make for budget `i` at T0. */
const keyOf = (i: number, unit: 'tokens' | 'usd' = 'tokens'): string => {
  const b = BUDGETS[i]!;
  return budgetKey(b, periodWindow(b.period, b.timeZone, T0), unit);
};

function query(windows: string[], budgets: string[]): string {
  const q = new URLSearchParams();
  for (const w of windows) q.append('window', w);
  for (const b of budgets) q.append('budget', b);
  return `/counters?${q.toString()}`;
}

describe('server/counters: GET /counters', () => {
  let store: MemoryStore;
  let source: CounterSource;
  const deps: CountersRouteDeps = { config: () => cfg, counters: () => source, now: () => T0, deadlineMs: 200 };

  beforeEach(async () => {
    store = new MemoryStore();
    source = store;
    const ann = bucketKey('per-user', 'ann@acme.test');
    await store.admit(
      {
        windows: [{ key: ann, limit: 3, windowMs: 60_000 }, { key: ann, limit: 3, windowMs: 60_000 }],
        budgets: [
          { key: keyOf(0), limit: 1000, amount: 40, minAmount: 40, expiresAtMs: T0 + 86_400_000 },
          { key: keyOf(0, 'usd'), limit: 5_000_000, amount: 900, minAmount: 900, expiresAtMs: T0 + 86_400_000 },
        ],
        reservationId: 'r1',
        ttlMs: 600_000,
      },
      T0 - 10_000,
    );
    await store.settle([{ key: keyOf(0), expiresAtMs: T0 + 86_400_000 }], 'r1', [25], T0 - 5_000);
  });

  it('reads windows and budgets (tokens and micro-dollars) by the keys the planners make, in the order asked', async () => {
    const ann = bucketKey('per-user', 'ann@acme.test');
    const nobody = bucketKey('per-user', 'nobody');
    const answer = await countersAnswer(deps, query([nobody, ann], [keyOf(0), keyOf(0, 'usd'), keyOf(1), keyOf(2), keyOf(3)]));
    expect(answer.status).to.equal(200);
    expect(answer.body).to.deep.equal({
      windows: [
        { key: nobody, count: 0 },
        { key: ann, count: 2, resetMs: 50_000 },
      ],
      budgets: [
        // Settling the tokens removed the reservation r1 from the tokens key only.
        { key: keyOf(0), unit: 'tokens', used: 25, reserved: 0 },
        { key: keyOf(0, 'usd'), unit: 'usd-micros', used: 0, reserved: 900 },
        { key: keyOf(1), unit: 'tokens', used: 0, reserved: 0 },
        { key: keyOf(2), unit: 'tokens', used: 0, reserved: 0 },
        { key: keyOf(3), unit: 'tokens', used: 0, reserved: 0 },
      ],
    });
  });

  it('accepts every key shape the planners make: shared bucket, hashed value, each period, encoded subjects', () => {
    for (const key of [
      bucketKey('per-user', undefined),
      bucketKey('per-user', 'x'.repeat(500)),
      bucketKey('per group', 'ml: team/α'),
    ]) {
      expect(windowKeyRefusal(cfg, key), key).to.equal(undefined);
    }
    for (const key of [keyOf(0), keyOf(0, 'usd'), keyOf(1), keyOf(2), keyOf(3)]) {
      expect(budgetKeyRefusal(cfg, key), key).to.equal(undefined);
    }
    expect(keyOf(1)).to.match(/T\d{2}:\d{2}$/);
    expect(keyOf(3)).to.include('ml%3A%20team');
  });

  it('400 for anything that is not a key the planners make, before touching the store', async () => {
    source = {
      readBudget: () => Promise.reject(new Error('must not be read')),
      readWindow: () => Promise.reject(new Error('must not be read')),
    };
    const refused = async (url: string): Promise<string> => {
      const a = await countersAnswer(deps, url);
      expect(a.status, url).to.equal(400);
      return (a.body as { error: string }).error;
    };
    expect(await refused('/counters')).to.include('at least one');
    expect(await refused('/counters?key=rl:per-user')).to.include('unknown parameter "key"');
    for (const bad of [
      'tollgate:rl:per-user',
      'rl:',
      'rl:per-user:a:b',
      'rl:per user',
      `rl:per-user:${'a'.repeat(129)}`,
      'rl:per-user:a b',
      '*',
      'tb:tenant:acme:2026-11',
    ]) {
      expect(await refused(query([bad], [])), bad).to.match(/^window /);
    }
    for (const bad of [
      'tb:tenant:acme',
      'tb:org:acme:2026-11',
      'tx:tenant:acme:2026-11',
      'tb:tenant:acme:*',
      'tb:tenant:acme:2026-11:00',
      'tb:tenant:ac me:2026-11',
      'rl:per-user',
      'tb:tenant:acme:2026-11\nFLUSHALL',
    ]) {
      expect(await refused(query([], [bad])), bad).to.match(/^budget /);
    }
    const many = Array.from({ length: MAX_COUNTER_KEYS + 1 }, (_, i) => bucketKey('per-user', `u${i}`));
    expect(await refused(query(many, []))).to.include(`at most ${MAX_COUNTER_KEYS}`);
    expect(await refused(query([`rl:per-user:${'a'.repeat(600)}`], []))).to.include('longer than');
  });

  it('404 for a well-formed key of a limit or budget the configuration does not have', async () => {
    const missing = async (url: string): Promise<string> => {
      const a = await countersAnswer(deps, url);
      expect(a.status, url).to.equal(404);
      return (a.body as { error: string }).error;
    };
    expect(await missing(query([bucketKey('other', 'ann')], []))).to.include('no rate limit');
    expect(await missing(query([], ['tb:tenant:globex:2026-11']))).to.include('no budget');
    // The right subject, another period's shape or a unit it does not count.
    expect(await missing(query([], ['tb:tenant:acme:2026-11-15']))).to.include('no budget');
    expect(await missing(query([], [keyOf(2, 'usd')]))).to.include('no budget');
    // A malformed key is named before an unconfigured one.
    expect((await countersAnswer(deps, query([bucketKey('other', 'ann'), 'nope'], []))).status).to.equal(400);
  });

  it('503 when the store fails or does not answer in time, never a made-up zero', async () => {
    source = { readBudget: () => Promise.reject(new Error('down')), readWindow: (k, n) => store.readWindow(k, n) };
    const failed = await countersAnswer(deps, query([bucketKey('per-user', 'ann@acme.test')], [keyOf(0)]));
    expect(failed).to.deep.equal({ status: 503, body: { error: 'the counter store is unavailable' } });
    source = { readBudget: (k, n) => store.readBudget(k, n), readWindow: () => new Promise(() => undefined) };
    const hung = await countersAnswer(deps, query([bucketKey('per-user', 'ann@acme.test')], []));
    expect(hung.status).to.equal(503);
  });
});
