/**
 * The pieces of a polite life cycle that are not the gRPC server itself: work that must finish
 * before exit (usage settlements), a bounded split of the shutdown grace period, and key
 * fetches retried until the sidecar can report SERVING.
 */
import { setTimeout as sleep } from 'node:timers/promises';

/** Promises that must settle before the process exits (each ext_proc settlement). */
export class InFlight {
  private readonly pending = new Set<Promise<unknown>>();

  /** Registers `work` and hands it back unchanged. */
  track<T>(work: Promise<T>): Promise<T> {
    this.pending.add(work);
    const done = (): void => {
      this.pending.delete(work);
    };
    work.then(done, done);
    return work;
  }

  get size(): number {
    return this.pending.size;
  }

  /** Waits for everything tracked (also what gets tracked meanwhile), at most `timeoutMs`. True when all finished. */
  async drain(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + Math.max(0, timeoutMs);
    while (this.pending.size > 0) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      const timer = sleep(left, false, { ref: false });
      const all = Promise.allSettled([...this.pending]).then(() => true);
      if (!(await Promise.race([all, timer]))) return false;
    }
    return true;
  }
}

/**
 * How `server.shutdownGraceSeconds` is spent: calls in flight drain for most of it; the last
 * fifth (at most 2 s) is kept for the settlements those calls start as they end, and for
 * flushing logs and spans, so the whole stop fits in the grace period.
 */
export function splitGrace(graceMs: number): { drainMs: number; settleMs: number } {
  const settleMs = Math.min(2000, Math.floor(graceMs / 5));
  return { drainMs: graceMs - settleMs, settleMs };
}

/** Waits for `work`, at most `timeoutMs`; never rejects. */
export async function within(work: Promise<unknown>, timeoutMs: number): Promise<void> {
  const timer = sleep(Math.max(0, timeoutMs), undefined, { ref: false });
  await Promise.race([work.catch(() => undefined), timer]);
}

/**
 * Calls `fetch` while `ready()` is false: after `intervalMs`, then backing off (doubling, up to
 * `maxIntervalMs`) while it keeps failing, so a long IdP outage does not flood the logs.
 * Without it, a sidecar whose IdP was down at start would report NOT_SERVING, receive no
 * traffic, and so never trigger the on-demand fetch that would make it ready.
 */
export function retryUntilReady(opts: {
  ready(): boolean;
  fetch(): Promise<unknown>;
  intervalMs: number;
  maxIntervalMs?: number;
}): { stop(): void } {
  const max = opts.maxIntervalMs ?? opts.intervalMs * 16;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const schedule = (delay: number): void => {
    if (stopped) return;
    timer = setTimeout(() => void attempt(delay), delay);
    timer.unref();
  };
  const attempt = async (delay: number): Promise<void> => {
    // Ready (again): keep watching at the base pace, a reload may bring a new provider.
    if (opts.ready()) return schedule(opts.intervalMs);
    await opts.fetch().catch(() => undefined);
    schedule(opts.ready() ? opts.intervalMs : Math.min(delay * 2, max));
  };
  schedule(opts.intervalMs);
  return {
    stop: () => {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
