/**
 * Redis never stands alone on the hot path (DESIGN 1.3): every call gets a hard deadline, and
 * a failed or timed-out call takes the configured `onUnavailable` path:
 * - `closed`: throw TollgateError('store_unavailable') — the stage answers 503;
 * - `open`:   allow and count nothing (results flagged `degraded: 'open'`);
 * - `local`:  use this replica's in-memory counters until Redis answers again.
 *
 * The model is rate-limiter-flexible's insurance limiter (store failure ≠ limit reached) plus
 * its timeout wrapper; we cannot reuse those classes because they wrap one-key limiters and
 * our calls are multi-key, all-or-nothing scripts. A circuit breaker bounds the damage of a
 * dead or hanging Redis: after `failureThreshold` consecutive failures it opens and skips
 * Redis entirely, letting one probe call through at most once per `probeIntervalMs`, and
 * closes when a probe succeeds. So a dead Redis costs at most one timeout per interval.
 *
 * A call that timed out may still have been applied by Redis later; the fallback then counts
 * it a second time locally. That errs on the side of limiting, which is the safer side.
 */
import { TollgateError } from '../domain/errors.js';
import type { OnUnavailable } from '../config/schema.js';
import { MemoryStore } from './memory.js';
import type { AdmitRequest, AdmitResult, BudgetState, CounterReader, SettleResult, Store, WindowCount } from './store.js';
import type { BudgetRef } from '../domain/reservation.js';

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface GuardedStoreOptions {
  readonly timeoutMs: number;
  readonly onUnavailable: OnUnavailable;
  /** Consecutive failures that open the breaker (default 3). */
  readonly failureThreshold?: number;
  /** Least time between two probes while the breaker is open (default 1000 ms). */
  readonly probeIntervalMs?: number;
  /** Wall clock of the breaker (default Date.now); the stores' `now` args are separate. */
  readonly clock?: () => number;
  /** The `local` policy's store (default a new MemoryStore). */
  readonly local?: Store;
  /** Told about every breaker transition, e.g. to log it. */
  readonly onStateChange?: (state: BreakerState, cause?: unknown) => void;
  /** Told about every failed or timed-out call to the primary store (for metrics). */
  readonly onError?: (err: unknown, timedOut: boolean) => void;
  /** Told about every call answered by the `onUnavailable` policy instead (for metrics). */
  readonly onFallback?: (policy: OnUnavailable) => void;
}

/** Counters for metrics. */
export interface GuardStats {
  readonly state: BreakerState;
  /** Calls to the primary store that failed or timed out. */
  readonly errors: number;
  /** Of those, the ones that hit the deadline. */
  readonly timeouts: number;
  /** Calls answered without the primary store (by policy, whichever it is). */
  readonly fallbacks: number;
}

class StoreTimeout extends Error {
  constructor(ms: number) {
    super(`store call exceeded ${ms} ms`);
    this.name = 'StoreTimeout';
  }
}

/** Ours, or the client's own per-command timeout (ioredis: "Command timed out"), which may win the race. */
function isTimeout(err: unknown): boolean {
  return err instanceof StoreTimeout || (err instanceof Error && /timed out/i.test(err.message));
}

export class GuardedStore implements Store {
  private readonly timeoutMs: number;
  private readonly onUnavailable: OnUnavailable;
  private readonly threshold: number;
  private readonly probeIntervalMs: number;
  private readonly clock: () => number;
  private readonly local: Store | undefined;
  private readonly onStateChange: ((state: BreakerState, cause?: unknown) => void) | undefined;
  private readonly onError: ((err: unknown, timedOut: boolean) => void) | undefined;
  private readonly onFallback: ((policy: OnUnavailable) => void) | undefined;
  private state: BreakerState = 'closed';
  private consecutiveFailures = 0;
  private nextProbeAt = 0;
  private errors = 0;
  private timeouts = 0;
  private fallbacks = 0;

  private readonly primary: Store;

  constructor(primary: Store, options: GuardedStoreOptions) {
    this.primary = primary;
    this.timeoutMs = options.timeoutMs;
    this.onUnavailable = options.onUnavailable;
    this.threshold = Math.max(1, options.failureThreshold ?? 3);
    this.probeIntervalMs = options.probeIntervalMs ?? 1000;
    this.clock = options.clock ?? Date.now;
    this.local =
      options.onUnavailable === 'local' ? (options.local ?? new MemoryStore()) : undefined;
    this.onStateChange = options.onStateChange;
    this.onError = options.onError;
    this.onFallback = options.onFallback;
  }

  /** The configured `onUnavailable` policy. */
  get policy(): OnUnavailable {
    return this.onUnavailable;
  }

  stats(): GuardStats {
    return {
      state: this.state,
      errors: this.errors,
      timeouts: this.timeouts,
      fallbacks: this.fallbacks,
    };
  }

  admit(request: AdmitRequest, now: number): Promise<AdmitResult> {
    return this.guard(
      () => this.primary.admit(request, now),
      async (local) => ({ ...(await local.admit(request, now)), degraded: 'local' }),
      () => ({
        allowed: true,
        windows: request.windows.map((h) => ({
          limit: h.limit,
          remaining: h.limit,
          resetMs: h.windowMs,
        })),
        reserved: request.budgets.map(() => 0),
        remaining: request.budgets.map((b) => b.limit),
        degraded: 'open',
      }),
    );
  }

  settle(
    items: readonly BudgetRef[],
    reservationId: string,
    amounts: readonly number[],
    now: number,
  ): Promise<SettleResult> {
    return this.guard(
      () => this.primary.settle(items, reservationId, amounts, now),
      async (local) => ({
        ...(await local.settle(items, reservationId, amounts, now)),
        degraded: 'local',
      }),
      () => ({ used: items.map(() => 0), degraded: 'open' }),
    );
  }

  release(items: readonly BudgetRef[], reservationId: string, now: number): Promise<void> {
    return this.guard(
      () => this.primary.release(items, reservationId, now),
      (local) => local.release(items, reservationId, now),
      () => undefined,
    );
  }

  readBudget(key: string, now: number): Promise<BudgetState> {
    return this.guard(
      () => this.primary.readBudget(key, now),
      (local) => local.readBudget(key, now),
      () => ({ used: 0, reserved: 0 }),
    );
  }

  /**
   * A rate-limit window as it stands (`tollgate whoami`), read from the primary when it can
   * read windows; under `local` from the local counters, under `open` as empty.
   */
  readWindow(key: string, now: number): Promise<WindowCount> {
    const primary: CounterReader = this.primary;
    const read = primary.readWindow?.bind(primary);
    if (read === undefined) return Promise.resolve({ count: 0 });
    return this.guard(
      () => read(key, now),
      (local) => (local as CounterReader).readWindow?.(key, now) ?? Promise.resolve({ count: 0 }),
      () => ({ count: 0 }),
    );
  }

  async close(): Promise<void> {
    await Promise.all([this.primary.close(), this.local?.close()]);
  }

  private async guard<T>(
    call: () => Promise<T>,
    viaLocal: (local: Store) => Promise<T>,
    open: () => T,
  ): Promise<T> {
    let cause: unknown = new Error('circuit open: store skipped until the next probe');
    if (this.mayCall()) {
      try {
        const result = await this.withDeadline(call());
        this.succeeded();
        return result;
      } catch (err) {
        this.failed(err);
        cause = err;
      }
    }
    this.fallbacks += 1;
    this.onFallback?.(this.onUnavailable);
    if (this.local) return viaLocal(this.local);
    if (this.onUnavailable === 'open') return open();
    throw new TollgateError('store_unavailable', 'The counter store (Redis) is unavailable.', {
      cause,
    });
  }

  /** Closed: always. Open: only as the one probe once the interval has passed. */
  private mayCall(): boolean {
    if (this.state === 'closed') return true;
    if (this.state === 'open' && this.clock() >= this.nextProbeAt) {
      this.transition('half-open');
      return true;
    }
    return false;
  }

  private succeeded(): void {
    this.consecutiveFailures = 0;
    if (this.state !== 'closed') this.transition('closed');
  }

  private failed(err: unknown): void {
    this.errors += 1;
    const timedOut = isTimeout(err);
    if (timedOut) this.timeouts += 1;
    this.onError?.(err, timedOut);
    this.consecutiveFailures += 1;
    // A failed probe reopens at once; otherwise wait for the threshold. Calls already in
    // flight when the breaker opened only push the next probe later.
    if (this.state === 'half-open' || this.consecutiveFailures >= this.threshold) {
      this.nextProbeAt = this.clock() + this.probeIntervalMs;
      if (this.state !== 'open') this.transition('open', err);
    }
  }

  private transition(state: BreakerState, cause?: unknown): void {
    this.state = state;
    this.onStateChange?.(state, cause);
  }

  /**
   * Rejects when `promise` has not settled `timeoutMs` after the call. The verdict waits one
   * turn of the event loop (setImmediate) after the timer: when the loop was blocked past the
   * deadline (a burst of work on a saturated sidecar), the timer and the reply are due
   * together, and timers run before sockets are read, so without that turn a reply already
   * waiting in the socket would lose to the timer and a busy sidecar would trip its own
   * breaker (bench/OPTIMISATIONS.md). A store that really is late still fails one turn later.
   */
  private withDeadline<T>(promise: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    let turn: NodeJS.Immediate | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        turn = setImmediate(() => reject(new StoreTimeout(this.timeoutMs)));
      }, this.timeoutMs);
    });
    // race() subscribes to both, so a late rejection of `promise` is never unhandled.
    return Promise.race([promise, deadline]).finally(() => {
      clearTimeout(timer);
      if (turn !== undefined) clearImmediate(turn);
    });
  }
}
