/**
 * The token ledger: what ext_proc calls once per request when the response has ended.
 *
 * - `settle` turns the admission's reservation into the real usage (one store call for every
 *   budget) and writes exactly one audit line, `audit: 'usage'`, with the tokens, whether they
 *   came from the provider or were estimated, and the request's identity — never the prompt,
 *   the completion or any key.
 * - `release` is for responses that cost nothing (an upstream error, a request that never
 *   reached the upstream): the reservation is dropped and the audit line says `charged: 0`.
 *
 * A reservation may also hold concurrency slots (unit `slot`, limits/rate-limit.ts): they are
 * freed by the same store call, charged nothing, and left out of the line's `budgets`.
 *
 * Neither ever throws: a settlement is the last thing done for a request and nothing can
 * act on a failure any more. So a failed store call is logged, and the audit line is still
 * written, with `settled: false` and the budget keys, at level `error`. That line carries
 * everything needed to replay the charge later (docs/budgets.md), so a Redis outage at the
 * wrong moment loses no tokens.
 */
import type { Config } from '../config/schema.js';
import { endpointForPath, type Endpoint } from '../request/endpoint.js';
import type { Usage } from '../metering/usage.js';
import { budgetLimits, budgetName } from './planner.js';
import { costOfUsage, formatMicros } from '../metering/pricing.js';
import type { Degraded, Store } from '../store/store.js';
import type { UsageBook } from '../store/usage-book.js';
import type { DailyUsageConfig } from '../config/schema.js';
import { periodWindow } from './period.js';
import { auditLogger, type Logger } from '../telemetry/logger.js';
import type { UsageMetrics } from '../telemetry/metrics.js';
import type { Handoff } from '../handoff/handoff.js';

/** How the exchange ended, as ext_proc saw it. */
export interface SettleOutcome {
  /** The upstream's HTTP status (0 when no response headers arrived). */
  readonly status: number;
  /** From admission (the Check) to the end of the response. */
  readonly latencyMs: number;
  /** The client went away, or the upstream reset, before the response ended. */
  readonly aborted: boolean;
  /** The provider's own `x-request-id` (OpenAI's `req_…`), to join its logs to ours. */
  readonly providerRequestId?: string;
}

/**
 * Why a hand-off is released without a charge: the upstream answered with a non-2xx status
 * (`upstream_status_503`), the endpoint uses no tokens (`not_metered`), the request was
 * or refused on its way out (`not_forwarded`).
 */
export type ReleaseReason = `upstream_status_${number}` | 'not_metered' | 'not_forwarded';

export interface LedgerDeps {
  readonly logger: Logger;
  /** The usage book and how it keeps days; absent (or `keepDays: 0`) = no tallies. */
  readonly usage?: { readonly book: UsageBook; readonly days: DailyUsageConfig };
  /** `gen_ai.client.token.usage`, tokens by source, budget levels, open reservations. */
  readonly metrics?: UsageMetrics;
  readonly now?: () => number;
}

/** GenAI semantic conventions' `gen_ai.operation.name` per endpoint. */
const OPERATION: Readonly<Record<Endpoint, string>> = {
  chat: 'chat',
  completions: 'text_completion',
  embeddings: 'embeddings',
  responses: 'chat',
  other: 'other',
};

/** Result of the store call, for the audit line. */
interface Applied {
  readonly settled: boolean;
  readonly degraded?: Degraded;
  readonly remaining?: Record<string, number>;
  /** What cost budgets have left, USD as exact decimal strings. */
  readonly remainingCost?: Record<string, string>;
  readonly error?: string;
}

export class BudgetLedger {
  private readonly store: Store;
  private readonly logger: Logger;
  /** Writes the usage lines: built from named fields, none keyed by outside names. */
  private readonly auditLog: Logger;
  private readonly metrics: LedgerDeps['metrics'];
  private readonly usage: LedgerDeps['usage'];
  private readonly now: () => number;
  /** `<unit> <budget name>` → its limit, to report what is left after a settlement. */
  private readonly limits: ReadonlyMap<string, number>;

  constructor(config: Pick<Config, 'tokenBudgets'>, store: Store, deps: LedgerDeps) {
    this.store = store;
    this.logger = deps.logger;
    this.auditLog = auditLogger(deps.logger, []);
    this.metrics = deps.metrics;
    this.usage = deps.usage !== undefined && deps.usage.days.keepDays > 0 ? deps.usage : undefined;
    this.now = deps.now ?? Date.now;
    this.limits = new Map(
      config.tokenBudgets.flatMap((b) => budgetLimits(b).map(({ unit, limit }) => [`${unit} ${budgetName(b)}`, limit])),
    );
  }

  /**
   * Charges `usage.totalTokens` to every reserved token budget and the usage priced at the
   * hand-off's price to every cost budget, in one store call, and writes the audit line.
   * Never throws.
   */
  async settle(handoff: Handoff, usage: Usage, outcome: SettleOutcome): Promise<void> {
    try {
      const r = handoff.reservation;
      // However the store call ends, this process holds the reservation no longer.
      if (r !== undefined) this.metrics?.reservationClosed(r);
      // An estimate (abort) is priced like provider usage; `source` marks both as estimated.
      const cost = handoff.price !== undefined ? costOfUsage(handoff.price, usage) : undefined;
      const units = r?.budgets.map((_, i) => r.units?.[i] ?? 'tokens') ?? [];
      const amounts = units.map((unit) => (unit === 'usd' ? (cost ?? 0) : unit === 'slot' ? 0 : usage.totalTokens));
      let applied: Applied = { settled: true };
      if (r !== undefined && r.budgets.length > 0) {
        try {
          const result = await this.store.settle(r.budgets, r.id, amounts, this.now());
          const remaining: Record<string, number> = {};
          const remainingCost: Record<string, string> = {};
          r.names.forEach((name, i) => {
            const unit = units[i] ?? 'tokens';
            if (unit === 'slot') return;
            const limit = this.limits.get(`${unit} ${name}`);
            const used = result.used[i];
            if (limit === undefined || used === undefined) return;
            if (unit === 'usd') remainingCost[name] = formatMicros(Math.max(0, limit - used));
            else remaining[name] = Math.max(0, limit - used);
            // The budget gauges count tokens; cost budgets are read on /budget.
            if (unit === 'tokens' && result.degraded !== 'open') this.metrics?.recordBudget(name, used, limit);
          });
          // `open` answered without Redis: nothing was charged, so the line must be replayable
          // (unless only concurrency slots were held: nothing to charge).
          applied =
            result.degraded === 'open' && units.some((u) => u !== 'slot')
              ? { settled: false, degraded: 'open' }
              : {
                  settled: true,
                  remaining,
                  remainingCost,
                  ...(result.degraded ? { degraded: result.degraded } : {}),
                };
        } catch (err) {
          applied = { settled: false, error: errorMessage(err) };
        }
      }
      this.write(handoff, applied, {
        inputTokens: usage.inputTokens,
        outputTokens: usage.outputTokens,
        totalTokens: usage.totalTokens,
        ...(usage.cachedInputTokens !== undefined ? { cachedInputTokens: usage.cachedInputTokens } : {}),
        ...(usage.reasoningTokens !== undefined ? { reasoningTokens: usage.reasoningTokens } : {}),
        source: usage.source,
        charged: units.includes('tokens') ? usage.totalTokens : 0,
        // USD as exact decimal strings: the price × usage, and what cost budgets were charged.
        ...(cost !== undefined ? { cost: formatMicros(cost) } : {}),
        ...(units.includes('usd') && cost !== undefined ? { chargedCost: formatMicros(cost) } : {}),
        status: outcome.status,
        aborted: outcome.aborted,
        ...(outcome.providerRequestId !== undefined ? { providerRequestId: outcome.providerRequestId } : {}),
        latencyMs: Math.round(outcome.latencyMs * 1000) / 1000,
      });
      this.record(handoff, usage, cost);
      await this.tally(handoff, usage, cost);
    } catch (err) {
      this.safeError(err, handoff, 'settlement failed');
    }
  }

  /**
   * Adds the request to its day in the usage book (the portal's charts). A report, not the
   * ledger: a failed write is logged and dropped; the audit line above has every number.
   */
  private async tally(handoff: Handoff, usage: Usage, costMicros: number | undefined): Promise<void> {
    const book = this.usage;
    if (book === undefined) return;
    const day = periodWindow('day', book.days.timeZone, this.now());
    try {
      await book.book.tally({
        day: day.id,
        tenant: handoff.identity.tenant ?? '',
        user: handoff.identity.user,
        model: handoff.model ?? '',
        inputTokens: usage.inputTokens,
        outputTokens: usage.outputTokens,
        estimatedTokens: usage.source === 'provider' ? 0 : usage.totalTokens,
        costMicros: costMicros ?? 0,
        expiresAtMs: day.endMs + book.days.keepDays * 86_400_000,
      });
    } catch (err) {
      this.logger.warn(
        { requestId: handoff.requestId, reason: errorMessage(err) },
        'daily usage tally not written (the usage line has the numbers)',
      );
    }
  }

  /** Drops the reservation without charging (`reason`: e.g. `upstream_status_503`). Never throws. */
  async release(handoff: Handoff, reason: ReleaseReason, providerRequestId?: string): Promise<void> {
    try {
      const r = handoff.reservation;
      // However the store call ends, this process holds the reservation no longer.
      if (r !== undefined) this.metrics?.reservationClosed(r);
      let applied: Applied = { settled: true };
      if (r !== undefined && r.budgets.length > 0) {
        try {
          await this.store.release(r.budgets, r.id, this.now());
        } catch (err) {
          // Harmless for the ledger: the reservation expires on its own (reservationTtlSeconds).
          applied = { settled: false, error: errorMessage(err) };
        }
      }
      this.write(handoff, applied, {
        inputTokens: 0,
        outputTokens: 0,
        totalTokens: 0,
        charged: 0,
        reason,
        ...(providerRequestId !== undefined ? { providerRequestId } : {}),
        latencyMs: Math.round((this.now() - handoff.admittedAt) * 1000) / 1000,
      });
    } catch (err) {
      this.safeError(err, handoff, 'release failed');
    }
  }

  private write(handoff: Handoff, applied: Applied, fields: Record<string, unknown>): void {
    const { identity, reservation } = handoff;
    // Concurrency slots are no budget's: their keys need no replay, their names are limits'.
    const budgetAt = (i: number): boolean => reservation?.units?.[i] !== 'slot';
    const line = {
      audit: 'usage',
      requestId: handoff.requestId,
      admission: handoff.id,
      subject: identity.subject,
      user: identity.user,
      tenant: identity.tenant,
      groups: identity.groups,
      model: handoff.model,
      path: handoff.path,
      ...fields,
      // A budget in tokens and USD has two counters but one name.
      budgets: [...new Set(reservation?.names.filter((_, i) => budgetAt(i)) ?? [])],
      settled: applied.settled,
      ...(applied.degraded !== undefined ? { degraded: applied.degraded } : {}),
      ...(applied.remaining !== undefined && Object.keys(applied.remaining).length > 0
        ? { remaining: applied.remaining }
        : {}),
      ...(applied.remainingCost !== undefined && Object.keys(applied.remainingCost).length > 0
        ? { remainingCost: applied.remainingCost }
        : {}),
      // Keys only where someone may need to replay the line by hand.
      ...(!applied.settled ? { budgetKeys: reservation?.budgets.filter((_, i) => budgetAt(i)).map((b) => b.key) ?? [] } : {}),
      ...(applied.error !== undefined ? { error: applied.error } : {}),
    };
    if (applied.settled) this.auditLog.info(line, fields['reason'] === undefined ? 'usage settled' : 'usage released');
    else this.auditLog.error(line, 'usage NOT settled in the budget store; replay this line');
  }

  private record(handoff: Handoff, usage: Usage, costMicros: number | undefined): void {
    const m = this.metrics;
    if (m === undefined) return;
    m.recordUsage({
      operation: OPERATION[endpointForPath(handoff.path)],
      model: handoff.model,
      tenant: handoff.identity.tenant,
      user: handoff.identity.user,
      source: usage.source,
      inputTokens: usage.inputTokens,
      outputTokens: usage.outputTokens,
      ...(costMicros !== undefined ? { costMicros } : {}),
    });
  }

  private safeError(err: unknown, handoff: Handoff, msg: string): void {
    try {
      this.logger.error({ err, requestId: handoff.requestId, admission: handoff.id }, msg);
    } catch {
      // Logging itself failed; there is nowhere left to report it.
    }
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
