/**
 * `server.workers > 1`: the primary process of a node:cluster. It forks the workers, which
 * each run the whole sidecar on the one gRPC port (grpc-js listens through `net`, so the
 * cluster shares one listening socket and the primary hands each new connection to the next
 * worker in turn), restarts a worker that dies (with backoff), asks them questions over IPC
 * (their metrics, a budget or counters, a reload) and stops them all on shutdown. The primary itself never
 * serves a Check. docs/workers.md.
 */
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import type { Logger } from '../telemetry/logger.js';

/** The number of processes `server.workers` asks for (`auto`: one per available CPU). */
export function workerCount(setting: number | 'auto', cpus: number = availableParallelism()): number {
  return setting === 'auto' ? Math.max(1, cpus) : setting;
}

/** The environment variable that tells a forked worker its slot (1..N, kept across restarts). */
export const WORKER_SLOT_ENV = 'TOLLGATE_WORKER';

/** Primary → worker. */
export type ToWorker =
  | { readonly t: 'ask'; readonly id: number; readonly question: Question }
  | { readonly t: 'stop' };

/** What the primary asks a worker. */
export type Question =
  | { readonly kind: 'metrics' }
  | { readonly kind: 'budget'; readonly url: string }
  | { readonly kind: 'counters'; readonly url: string }
  | { readonly kind: 'reload'; readonly text: string };

/** Worker → primary. */
export type FromWorker =
  | { readonly t: 'listening'; readonly address: string }
  | { readonly t: 'config' }
  | { readonly t: 'answer'; readonly id: number; readonly ok: boolean; readonly value: unknown };

/** Primary → worker, the answer to `{t: 'config'}`: the configuration in force. */
export interface ConfigText {
  readonly t: 'config';
  readonly text: string;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}

/** Whether an IPC message is one of ours (anything else on the channel is ignored). */
export function isFromWorker(m: unknown): m is FromWorker {
  if (!isObject(m)) return false;
  if (m['t'] === 'listening') return typeof m['address'] === 'string';
  if (m['t'] === 'config') return true;
  return m['t'] === 'answer' && typeof m['id'] === 'number' && typeof m['ok'] === 'boolean';
}

export function isToWorker(m: unknown): m is ToWorker | ConfigText {
  if (!isObject(m)) return false;
  if (m['t'] === 'stop') return true;
  if (m['t'] === 'config') return typeof m['text'] === 'string';
  return m['t'] === 'ask' && typeof m['id'] === 'number' && isObject(m['question']);
}

/**
 * How long a slot waits before its worker is forked again: `baseMs`, doubling while its
 * workers keep dying young, at most `maxMs`; back to `baseMs` once one lived `stableMs`.
 */
export class RestartBackoff {
  private delay = 0;
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly stableMs: number;

  constructor(baseMs = 100, maxMs = 10_000, stableMs = 30_000) {
    this.baseMs = baseMs;
    this.maxMs = maxMs;
    this.stableMs = stableMs;
  }

  /** The delay before the next fork, given how long the worker that just died lived. */
  next(livedMs: number): number {
    this.delay = livedMs >= this.stableMs || this.delay === 0 ? this.baseMs : Math.min(this.delay * 2, this.maxMs);
    return this.delay;
  }
}

/** The pool's own series, merged with the workers' into the one `/metrics`. */
export function poolExposition(pool: Pick<WorkerPool, 'live' | 'restarts'>): string {
  return [
    '# HELP tollgate_workers Worker processes running and listening (server.workers)',
    '# TYPE tollgate_workers gauge',
    `tollgate_workers ${pool.live}`,
    '# HELP tollgate_worker_restarts_total Worker processes forked again after one died',
    '# TYPE tollgate_worker_restarts_total counter',
    `tollgate_worker_restarts_total ${pool.restarts}`,
    '',
  ].join('\n');
}

export interface WorkerPoolOptions {
  readonly count: number;
  readonly logger: Logger;
  /** The configuration text a (re)started worker runs with (the last one applied). */
  configText(): string;
  /** How long one question may take before its worker's answer is given up (default 2 s). */
  readonly askTimeoutMs?: number;
  /** How long a worker may take to apply a configuration (default 30 s: new keys are fetched first). */
  readonly reloadTimeoutMs?: number;
  readonly backoff?: () => RestartBackoff;
}

interface Slot {
  readonly index: number;
  worker: Worker | undefined;
  started: number;
  listening: boolean;
  /** The configuration text this slot's worker runs (sent at start, or applied by a reload). */
  configText: string | undefined;
  readonly backoff: RestartBackoff;
  timer: NodeJS.Timeout | undefined;
}

/** A worker's answer, or why there is none. */
export type Answer<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: string };

export class WorkerPool {
  private readonly slots: Slot[];
  /** Questions waiting for their answer, with the worker asked (an exit fails its questions). */
  private readonly pending = new Map<number, { worker: Worker; done(answer: Answer<unknown>): void }>();
  private nextId = 1;
  private nextOne = 0;
  private stopping = false;
  private restartCount = 0;
  private address: string | undefined;
  private readonly opts: WorkerPoolOptions;

  constructor(opts: WorkerPoolOptions) {
    this.opts = opts;
    const backoff = opts.backoff ?? (() => new RestartBackoff());
    this.slots = Array.from({ length: opts.count }, (_, i) => ({
      index: i + 1,
      worker: undefined,
      started: 0,
      listening: false,
      configText: undefined,
      backoff: backoff(),
      timer: undefined,
    }));
  }

  /** Workers running and listening now. */
  get live(): number {
    return this.slots.filter((s) => s.listening).length;
  }

  /** Workers forked again after one died. */
  get restarts(): number {
    return this.restartCount;
  }

  /**
   * Forks every worker and resolves with the gRPC address once all listen. A worker that exits
   * before that fails the start (it printed why: a port in use, a secret missing…): the promise
   * rejects, the caller stops the others, and a bad start ends the process instead of looping.
   */
  async start(): Promise<string> {
    return new Promise((resolve, reject) => {
      let failed = false;
      const onListening = (): void => {
        if (!failed && this.slots.every((s) => s.listening) && this.address !== undefined) {
          this.startupDone = undefined;
          resolve(this.address);
        }
      };
      this.startupDone = {
        listening: onListening,
        died: (slot, code, signal) => {
          if (failed) return;
          failed = true;
          this.startupDone = undefined;
          // No restarts from here: the caller stops the others (stop()) and exits.
          this.stopping = true;
          reject(new Error(`worker ${slot.index} exited during start-up (${signal ?? `code ${code}`})`));
        },
      };
      for (const slot of this.slots) this.fork(slot);
    });
  }

  /** Set while start() waits: the first failure fails it instead of a restart. */
  private startupDone:
    | { listening(): void; died(slot: Slot, code: number | null, signal: string | null): void }
    | undefined;

  private fork(slot: Slot): void {
    slot.timer = undefined;
    slot.listening = false;
    slot.started = performance.now();
    const worker = cluster.fork({ [WORKER_SLOT_ENV]: String(slot.index) });
    slot.worker = worker;
    worker.on('message', (m: unknown) => this.onMessage(slot, worker, m));
    worker.on('exit', (code, signal) => this.onExit(slot, worker, code, signal));
    // A worker that cannot be reached (e.g. it died mid-send) is handled by its exit.
    worker.on('error', (err) => this.opts.logger.warn({ err, worker: slot.index }, 'worker channel error'));
  }

  private onMessage(slot: Slot, worker: Worker, m: unknown): void {
    if (!isFromWorker(m)) return;
    if (m.t === 'config') {
      // A worker forked just before stop() may have missed the word: it gets it now instead.
      const text = this.opts.configText();
      const reply: ToWorker | ConfigText = this.stopping ? { t: 'stop' } : { t: 'config', text };
      slot.configText = text;
      try {
        worker.send(reply);
      } catch {
        // It died meanwhile: its exit is handled.
      }
    } else if (m.t === 'listening') {
      slot.listening = true;
      this.address ??= m.address;
      this.startupDone?.listening();
      // A configuration applied while it was starting must reach it too.
      this.sync(slot);
    } else {
      this.pending.get(m.id)?.done(m.ok ? { ok: true, value: m.value } : { ok: false, error: String(m.value) });
    }
  }

  private onExit(slot: Slot, worker: Worker, code: number | null, signal: string | null): void {
    for (const p of [...this.pending.values()]) {
      if (p.worker === worker) p.done({ ok: false, error: `worker ${slot.index} exited` });
    }
    if (slot.worker !== worker) return;
    slot.worker = undefined;
    slot.listening = false;
    if (this.startupDone !== undefined) {
      this.startupDone.died(slot, code, signal);
      return;
    }
    if (this.stopping) return;
    const lived = performance.now() - slot.started;
    const delayMs = slot.backoff.next(lived);
    this.restartCount += 1;
    this.opts.logger.error(
      { worker: slot.index, pid: worker.process.pid, code, signal, livedMs: Math.round(lived), restartInMs: delayMs },
      'worker died; restarting it',
    );
    slot.timer = setTimeout(() => this.fork(slot), delayMs);
  }

  /**
   * Has every listening worker (or only `only`) that runs another configuration than
   * `configText()` apply it: a worker forked while a reload was under way started with the
   * previous one.
   */
  sync(only?: Slot): void {
    if (this.stopping) return;
    const text = this.opts.configText();
    for (const slot of only === undefined ? this.slots : [only]) {
      if (!slot.listening || slot.configText === text) continue;
      void this.ask<null>(slot, { kind: 'reload', text }).then((a) => {
        if (!a.ok) this.opts.logger.error({ worker: slot.index, error: a.error }, 'worker kept a previous configuration');
      });
    }
  }

  /** Asks one worker (each in turn) and waits for its answer. */
  askOne<T>(question: Question): Promise<Answer<T>> {
    const ready = this.slots.filter((s) => s.listening && s.worker !== undefined);
    const slot = ready[this.nextOne++ % ready.length];
    return slot === undefined ? Promise.resolve({ ok: false, error: 'no worker is running' }) : this.ask<T>(slot, question);
  }

  /** Asks every running worker; the answers in slot order. */
  askAll<T>(question: Question): Promise<Answer<T>[]> {
    return Promise.all(
      this.slots.filter((s) => s.listening && s.worker !== undefined).map((s) => this.ask<T>(s, question)),
    );
  }

  private ask<T>(slot: Slot, question: Question): Promise<Answer<T>> {
    const worker = slot.worker;
    if (worker === undefined) return Promise.resolve({ ok: false, error: `worker ${slot.index} is not running` });
    const id = this.nextId++;
    const timeoutMs =
      question.kind === 'reload' ? (this.opts.reloadTimeoutMs ?? 30_000) : (this.opts.askTimeoutMs ?? 2000);
    return new Promise((resolve) => {
      const done = (answer: Answer<unknown>): void => {
        clearTimeout(timer);
        this.pending.delete(id);
        // A failed or late reload leaves the worker's configuration unknown: the next sync re-sends.
        if (question.kind === 'reload') slot.configText = answer.ok ? question.text : undefined;
        resolve(answer as Answer<T>);
      };
      const timer = setTimeout(
        () => done({ ok: false, error: `worker ${slot.index} did not answer within ${timeoutMs} ms` }),
        timeoutMs,
      );
      this.pending.set(id, { worker, done });
      const message: ToWorker = { t: 'ask', id, question };
      try {
        worker.send(message);
      } catch (err) {
        done({ ok: false, error: `worker ${slot.index}: ${String(err)}` });
      }
    });
  }

  /**
   * Tells every worker to drain (each keeps today's guarantees within `graceMs`) and waits
   * for all to exit; one still running `marginMs` after the grace period is killed.
   */
  async stop(graceMs: number, marginMs = 2000): Promise<void> {
    this.stopping = true;
    for (const slot of this.slots) clearTimeout(slot.timer);
    const running = this.slots.flatMap((s) => (s.worker !== undefined ? [s.worker] : []));
    const exits = running.map(
      (w) =>
        new Promise<void>((resolve) => {
          if (w.isDead()) return resolve();
          w.once('exit', () => resolve());
          const stop: ToWorker = { t: 'stop' };
          try {
            w.send(stop);
          } catch {
            // Channel already closed: the worker sees the disconnect and stops on its own.
          }
        }),
    );
    const killer = setTimeout(() => {
      for (const w of running) if (!w.isDead()) w.process.kill('SIGKILL');
    }, graceMs + marginMs);
    await Promise.all(exits);
    clearTimeout(killer);
  }
}
