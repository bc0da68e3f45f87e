/**
 * Counters read from a running sidecar's `GET /counters` (server/counters.ts), for `tollgate
 * explain --url`: the windows and budgets of one admission in one request (in batches of at
 * most MAX_COUNTER_KEYS), whatever store the sidecar counts in.
 */
import type { CountersBody } from '../server/counters.js';
import { MAX_COUNTER_KEYS } from '../server/counters.js';
import type { BudgetState, CounterReader, CounterValues, WindowCount } from '../store/store.js';
import { listenerHeaders, listenerUrl, unauthorizedText } from './budget.js';

/** The sidecar could not be reached or did not answer as `/counters` does. */
export class SidecarError extends Error {}

export interface SidecarCountersOptions {
  readonly timeoutMs?: number;
}

/** Why `fetch` failed, in a few words (`connect ECONNREFUSED 127.0.0.1:9464`). */
function causeOf(err: unknown): string {
  if (err instanceof Error && err.cause instanceof Error) return err.cause.message;
  return err instanceof Error ? err.message : String(err);
}

export class SidecarCounters implements CounterReader {
  /** The `/counters` URL (the listener's base URL, or the ready line's `…/metrics`). */
  readonly url: URL;
  private readonly timeoutMs: number;

  /** Throws a SidecarError when `base` is not a URL. */
  constructor(base: string, opts: SidecarCountersOptions = {}) {
    try {
      this.url = listenerUrl(base, '/counters');
    } catch {
      throw new SidecarError(`--url is not a URL: ${JSON.stringify(base)}`);
    }
    this.timeoutMs = opts.timeoutMs ?? 10_000;
  }

  /** Resolves when the sidecar's listener answers `/healthz`: a clear error up front otherwise. */
  async ready(): Promise<void> {
    const healthz = new URL(this.url);
    healthz.pathname = healthz.pathname.replace(/\/counters$/, '/healthz');
    const res = await this.get(healthz);
    await res.body?.cancel();
    if (res.status !== 200) throw new SidecarError(`${healthz.href} answered ${res.status}: is this a Tollgate metrics listener (server.metrics)?`);
  }

  async readMany(windowKeys: readonly string[], budgetKeys: readonly string[], _now: number): Promise<CounterValues> {
    const asked = [
      ...windowKeys.map((key) => ['window', key] as const),
      ...budgetKeys.map((key) => ['budget', key] as const),
    ];
    const windows: WindowCount[] = [];
    const budgets: BudgetState[] = [];
    for (let i = 0; i < asked.length; i += MAX_COUNTER_KEYS) {
      const url = new URL(this.url);
      for (const [name, key] of asked.slice(i, i + MAX_COUNTER_KEYS)) url.searchParams.append(name, key);
      const body = await this.counters(url);
      for (const w of body.windows) windows.push(w.resetMs !== undefined ? { count: w.count, resetMs: w.resetMs } : { count: w.count });
      for (const b of body.budgets) budgets.push({ used: b.used, reserved: b.reserved });
    }
    if (windows.length !== windowKeys.length || budgets.length !== budgetKeys.length) {
      throw new SidecarError(`${this.url.origin} answered ${windows.length} windows and ${budgets.length} budgets for ${windowKeys.length} and ${budgetKeys.length} asked`);
    }
    return { windows, budgets };
  }

  async readBudget(key: string, now: number): Promise<BudgetState> {
    const { budgets } = await this.readMany([], [key], now);
    return budgets[0] ?? { used: 0, reserved: 0 };
  }

  async readWindow(key: string, now: number): Promise<WindowCount> {
    const { windows } = await this.readMany([key], [], now);
    return windows[0] ?? { count: 0 };
  }

  private async get(url: URL): Promise<Response> {
    try {
      return await fetch(url, { signal: AbortSignal.timeout(this.timeoutMs), redirect: 'error', headers: listenerHeaders() });
    } catch (err) {
      throw new SidecarError(`cannot reach ${url.origin} (${causeOf(err)}); is the sidecar running with server.metrics set?`);
    }
  }

  private async counters(url: URL): Promise<CountersBody> {
    const res = await this.get(url);
    if (res.status === 401) {
      await res.body?.cancel();
      throw new SidecarError(unauthorizedText(url.origin));
    }
    let text: string;
    try {
      text = await res.text();
    } catch (err) {
      throw new SidecarError(`${url.origin} broke off its answer (${causeOf(err)})`);
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      // An older sidecar has no /counters: its listener answers `not found` as text.
      throw new SidecarError(
        res.status === 404
          ? `${this.url.href} is not served: the sidecar predates GET /counters`
          : `${this.url.href} answered ${res.status} without JSON`,
      );
    }
    if (res.status !== 200 || !isCountersBody(body)) {
      const error = isRecord(body) && typeof body['error'] === 'string' ? body['error'] : undefined;
      // 404: a key of the configuration given here that the sidecar's configuration lacks.
      const hint = res.status === 404 ? ' (does the sidecar run the configuration given with --config?)' : '';
      throw new SidecarError(`the sidecar's /counters answered ${res.status}: ${error ?? 'not the counters'}${hint}`);
    }
    return body;
  }
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
const nonNegative = (n: unknown): boolean => typeof n === 'number' && Number.isFinite(n) && n >= 0;

function isCountersBody(v: unknown): v is CountersBody {
  if (!isRecord(v)) return false;
  const { windows, budgets } = v;
  return (
    Array.isArray(windows) &&
    Array.isArray(budgets) &&
    windows.every((w: unknown) => isRecord(w) && nonNegative(w['count']) && (w['resetMs'] === undefined || nonNegative(w['resetMs']))) &&
    budgets.every((b: unknown) => isRecord(b) && nonNegative(b['used']) && nonNegative(b['reserved']))
  );
}
