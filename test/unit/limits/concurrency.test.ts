/**
 * Concurrency limits (`rateLimits[].maxConcurrent`): a slot per bucket, taken in the one
 * admission with windows and budgets, carried to ext_proc in the reservation and freed by the
 * ledger when the response settles or is released.
 */
import { expect } from 'chai';
import type { Config, RateLimitConfig } from '../../../src/config/schema.js';
import { BudgetLedger } from '../../../src/budgets/ledger.js';
import { BudgetPlanner } from '../../../src/budgets/planner.js';
import { decodeHandoff, encodeHandoff, type Handoff } from '../../../src/handoff/handoff.js';
import type { PlanGrant, PlanInput } from '../../../src/limits/admit.js';
import { bucketKey, RateLimitPlanner, type RateLimitResult } from '../../../src/limits/rate-limit.js';
import { MemoryStore } from '../../../src/store/memory.js';
import type { Store } from '../../../src/store/store.js';
import { admitter } from '../../helpers/unit.js';
import { budget, config, ctx, denied, granted, identity, logSink, T0 } from '../budgets/helpers.js';

function concurrent(over: Partial<RateLimitConfig> = {}): RateLimitConfig {
  return { name: 'streams', match: { claims: {} }, maxConcurrent: 2, key: 'user', ...over };
}

function cfg(rateLimits: RateLimitConfig[], tenantTokens?: number): Config {
  const base = config(tenantTokens !== undefined ? [budget({ tenant: 'acme', maxTokens: tenantTokens })] : []);
  return { ...base, metering: { ...base.metering, reservationTtlSeconds: 60 }, rateLimits };
}

function stage(c: Config, store: Store, outcomes?: [string, RateLimitResult][]) {
  const options = outcomes !== undefined ? { onOutcome: (n: string, r: RateLimitResult) => outcomes.push([n, r]) } : {};
  return admitter([new RateLimitPlanner(c, options), new BudgetPlanner(c)], store);
}

let seq = 0;
const request = (over: Parameters<typeof ctx>[0] = {}): PlanInput => ctx({ handoffId: `adm-${++seq}`, ...over });

/** The hand-off of an admitted request, as the Check encodes it and ext_proc decodes it. */
function handoffOf(input: PlanInput, grant: PlanGrant): Handoff {
  const h: Handoff = {
    id: input.handoffId ?? '',
    requestId: 'req-1',
    identity: input.identity,
    method: 'POST',
    path: '/v1/chat/completions',
    model: 'gpt-4o-mini',
    promptEstimate: grant.promptEstimate ?? 0,
    ...(grant.reservation !== undefined ? { reservation: grant.reservation } : {}),
    injectUsage: false,
    admittedAt: input.now,
  };
  const decoded = decodeHandoff(encodeHandoff(h, 'eng'));
  if (decoded === undefined) throw new Error('hand-off did not decode');
  return decoded;
}

const SLOT_KEY = bucketKey('streams', 'ann@myorg.com', 'cc');

describe('limits/concurrency (maxConcurrent)', () => {
  it('admits up to maxConcurrent in flight, then 429 concurrency_limited with retry-after 1', async () => {
    const store = new MemoryStore();
    const outcomes: [string, RateLimitResult][] = [];
    const run = stage(cfg([concurrent()]), store, outcomes);
    granted(await run.run(request()));
    granted(await run.run(request()));
    const d = denied(await run.run(request()));
    expect(d).to.deep.equal({
      status: 429,
      reason: 'concurrency_limited',
      type: 'requests',
      code: 'rate_limit_exceeded',
      message: 'Concurrency limit reached for streams: Limit 2 requests in flight. Please try again when one of them has finished.',
      headers: { 'retry-after': '1' },
      rule: 'streams',
    });
    expect(outcomes).to.deep.equal([['streams', 'allowed'], ['streams', 'allowed'], ['streams', 'limited']]);
    expect(await store.readBudget(SLOT_KEY, T0)).to.deep.equal({ used: 0, reserved: 2 });
  });

  it('keys slots like windows: another user has slots of their own', async () => {
    const run = stage(cfg([concurrent({ maxConcurrent: 1 })]), new MemoryStore());
    granted(await run.run(request()));
    denied(await run.run(request()));
    granted(await run.run(request({ who: identity({ user: 'bob@myorg.com' }) })));
  });

  it('hands the slot over in the reservation, under the admission id, and sends no rate headers for it', async () => {
    const run = stage(cfg([concurrent()]), new MemoryStore());
    const input = request();
    const g = granted(await run.run(input));
    expect(g.responseHeaders).to.equal(undefined);
    expect(g.reservation).to.deep.equal({
      id: input.handoffId,
      budgets: [{ key: SLOT_KEY, expiresAtMs: T0 + 60_000 + 60_000 }],
      names: ['streams'],
      reserved: [1],
      units: ['slot'],
    });
    // Through the metadata and back, as ext_proc on any replica reads it.
    expect(handoffOf(input, g).reservation).to.deep.equal(g.reservation);
  });

  it('joins the slot and the budgets into one reservation; the ledger frees the slot and charges only the budget', async () => {
    const store = new MemoryStore();
    const c = cfg([concurrent({ maxConcurrent: 1 })], 10_000);
    const run = stage(c, store);
    const input = request({ maxTokens: 100 });
    const g = granted(await run.run(input));
    expect(g.reservation?.units).to.deep.equal(['slot', 'tokens']);
    expect(g.reservation?.names).to.deep.equal(['streams', 'tenant:acme']);
    denied(await run.run(request()));

    const sink = logSink();
    const ledger = new BudgetLedger(c, store, { logger: sink.logger, now: () => T0 + 1000 });
    const usage = { inputTokens: 10, outputTokens: 20, totalTokens: 30, source: 'provider' as const };
    await ledger.settle(handoffOf(input, g), usage, { status: 200, latencyMs: 5, aborted: false });
    expect(await store.readBudget(SLOT_KEY, T0 + 1000)).to.deep.equal({ used: 0, reserved: 0 });
    expect((await store.readBudget('tb:tenant:acme:2026-11', T0 + 1000)).used).to.equal(30);
    const line = sink.lines.find((l) => l['audit'] === 'usage');
    expect(line?.['budgets']).to.deep.equal(['tenant:acme']);
    expect(line?.['remaining']).to.deep.equal({ 'tenant:acme': 9970 });
    granted(await run.run(request({ now: T0 + 1000 })));
  });

  it('a release (abort before upstream, upstream error) frees the slot', async () => {
    const store = new MemoryStore();
    const c = cfg([concurrent({ maxConcurrent: 1 })]);
    const run = stage(c, store);
    const input = request();
    const g = granted(await run.run(input));
    const sink = logSink();
    const ledger = new BudgetLedger(c, store, { logger: sink.logger, now: () => T0 });
    await ledger.release(handoffOf(input, g), 'upstream_status_503');
    granted(await run.run(request()));
    expect(sink.lines.find((l) => l['audit'] === 'usage')?.['budgets']).to.deep.equal([]);
  });

  it('an unsettled slot expires after the reservation TTL', async () => {
    const run = stage(cfg([concurrent({ maxConcurrent: 1 })]), new MemoryStore());
    granted(await run.run(request()));
    denied(await run.run(request({ now: T0 + 59_999 })));
    granted(await run.run(request({ now: T0 + 60_000 })));
  });

  it('all or nothing: refused by a budget, the request takes no slot; refused by the slot, it reserves no tokens', async () => {
    const store = new MemoryStore();
    const c = cfg([concurrent({ maxConcurrent: 1 })], 1000);
    const run = stage(c, store);
    expect(denied(await run.run(request({ maxTokens: 5000 }))).reason).to.equal('budget_exhausted');
    expect(await store.readBudget(SLOT_KEY, T0)).to.deep.equal({ used: 0, reserved: 0 });
    granted(await run.run(request({ maxTokens: 100 })));
    const before = await store.readBudget('tb:tenant:acme:2026-11', T0);
    expect(denied(await run.run(request({ maxTokens: 100 }))).reason).to.equal('concurrency_limited');
    expect(await store.readBudget('tb:tenant:acme:2026-11', T0)).to.deep.equal(before);
  });

  it('with a window too: both count, and a full window refuses before the slots are looked at', async () => {
    const store = new MemoryStore();
    const run = stage(cfg([concurrent({ maxConcurrent: 5, requestsPerUnit: 1, unit: 'minute' })]), store);
    const g = granted(await run.run(request()));
    expect(g.responseHeaders?.['x-ratelimit-remaining-requests']).to.equal('0');
    expect(denied(await run.run(request())).reason).to.equal('rate_limited');
    expect(await store.readBudget(SLOT_KEY, T0)).to.deep.equal({ used: 0, reserved: 1 });
  });
});
