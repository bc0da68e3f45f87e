/**
 * `tollgate serve` with `server.workers > 1` (docs/workers.md). The primary forks the workers
 * (server/workers.ts), serves the one HTTP endpoint (`/metrics` merged over every worker,
 * `/budget` and `/counters` answered by one, `/healthz`), watches the configuration file and hands each valid
 * change to every worker, and on SIGTERM/SIGINT has every worker drain. Each worker is the
 * whole sidecar of one process (App) on the shared gRPC port, without an HTTP listener.
 */
import cluster from 'node:cluster';
import type { ServerResponse } from 'node:http';
import type { App } from '../app.js';
import { sendBudget, type BudgetAnswer } from '../budgets/view.js';
import { parseConfig } from '../config/load.js';
import { ConfigError } from '../config/problems.js';
import type { Config } from '../config/schema.js';
import { requireToken, startMetricsServer, type MetricsServer } from '../server/metrics-http.js';
import { resolveMetricsToken } from '../config/secrets.js';
import {
  WORKER_SLOT_ENV,
  WorkerPool,
  isToWorker,
  poolExposition,
  workerCount,
  type FromWorker,
  type Question,
} from '../server/workers.js';
import { createLogger, type Logger } from '../telemetry/logger.js';
import { mergeExpositions } from '../telemetry/merge-metrics.js';
import { Metrics } from '../telemetry/metrics.js';
import { stderr } from '../telemetry/output.js';
import { guardProcess, reloadOnChange } from './serve-shared.js';
import { exitWithin, untilSignal } from './signals.js';

/** Whether this process was forked by a `serve` primary. */
export function isClusterWorker(): boolean {
  return cluster.isWorker && process.env[WORKER_SLOT_ENV] !== undefined;
}

/** Time past the grace period the primary gives its workers before it kills them. */
const STOP_MARGIN_MS = 2000;

function sendText(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'text/plain' }).end(text);
}

/** Sends one worker's answer to a `/budget` or `/counters` question (503 when none answered). */
function askOneWorker(pool: WorkerPool, res: ServerResponse, question: Question): void {
  void pool.askOne<BudgetAnswer>(question).then((a) =>
    sendBudget(res, a.ok ? a.value : { status: 503, body: { error: `no worker answered: ${a.error}` } }),
  );
}

/** The primary: forks, supervises and stops the workers; never serves a Check itself. */
export async function servePrimary(file: string, config: Config, text: string): Promise<number> {
  const logger = createLogger({ level: config.logging.level });
  guardProcess(logger);
  const count = workerCount(config.server.workers);
  let current = { config, text };
  // The primary answers HTTP, so it holds the token the data routes need (re-read on reload).
  let metricsToken = await resolveMetricsToken(config);
  const token = (): string | undefined => metricsToken;
  const pool = new WorkerPool({ count, logger, configText: () => current.text });
  // The primary's own series: configuration reloads (counted once here, not once per worker).
  const metrics = new Metrics(config.metrics);
  let http: MetricsServer | undefined;
  if (config.server.metrics !== undefined) {
    http = await startMetricsServer(config.server.metrics, metrics, {
      '/metrics': (_req, res) => {
        void Promise.all([metrics.text(), pool.askAll<string>({ kind: 'metrics' })]).then(
          ([own, answers]) => {
            const texts = answers.flatMap((a) => (a.ok && typeof a.value === 'string' ? [a.value] : []));
            // A sum without a worker would read as a counter reset: a failed scrape instead.
            if (texts.length < answers.length)
              return sendText(res, 503, `${answers.length - texts.length} worker(s) did not answer\n`);
            sendText(res, 200, mergeExpositions([...texts, own, poolExposition(pool)]));
          },
          (err: unknown) => {
            logger.error({ err }, 'metrics scrape failed');
            sendText(res, 500, 'metrics unavailable\n');
          },
        );
      },
      // Read from the store by one worker: with Redis the same value whichever answers.
      '/budget': requireToken(token, (req, res) => askOneWorker(pool, res, { kind: 'budget', url: req.url ?? '/budget' })),
      '/counters': requireToken(token, (req, res) => askOneWorker(pool, res, { kind: 'counters', url: req.url ?? '/counters' })),
    });
  }
  // Listened for from here: a SIGTERM during start-up stops the workers once they are up.
  const signalled = untilSignal();
  // A worker that never comes up must not make the primary deaf to SIGTERM.
  const started = await Promise.race([
    pool.start().then(
      (grpc) => ({ grpc }),
      (err: unknown) => ({ err }),
    ),
    signalled.then((signal) => ({ signal })),
  ]);
  if (!('grpc' in started)) {
    if ('err' in started) logger.error({ err: started.err }, 'workers failed to start');
    else logger.info({ signal: started.signal }, 'stopped during start-up');
    await pool.stop(config.server.shutdownGraceSeconds * 1000, STOP_MARGIN_MS);
    await http?.close();
    await new Promise<void>((resolve) => logger.flush(() => resolve()));
    return 'err' in started ? 1 : 0;
  }
  const { grpc } = started;
  const watcher = reloadOnChange(file, {
    metrics,
    logger,
    reload: async (next, nextText) => {
      if (workerCount(next.server.workers) !== count) {
        logger.warn({ running: count, configured: next.server.workers }, 'server.workers changes take effect on restart');
      }
      const nextToken = await resolveMetricsToken(next);
      const answers = await pool.askAll<null>({ kind: 'reload', text: nextText });
      const failed = answers.flatMap((a) => (a.ok ? [] : [a.error]));
      if (failed.length > 0) {
        // One policy at a time: the workers that took the new text go back to the running one.
        pool.sync();
        throw new Error(`${failed.length} of ${answers.length} workers kept the previous configuration: ${failed.join('; ')}`);
      }
      current = { config: next, text: nextText };
      metricsToken = nextToken;
      // A worker that started meanwhile, with the previous text, gets this one too.
      pool.sync();
      metrics.configure(next.metrics);
      logger.info({ workers: answers.length }, 'configuration reloaded');
    },
  });
  logger.info({ grpc, metrics: http?.url, workers: count }, 'tollgate started');
  const signal = await signalled;
  const graceMs = current.config.server.shutdownGraceSeconds * 1000;
  exitWithin(graceMs, STOP_MARGIN_MS + 1000);
  logger.info({ signal, graceSeconds: graceMs / 1000, workers: pool.live }, 'shutting down');
  watcher.close();
  await pool.stop(graceMs, STOP_MARGIN_MS);
  await http?.close();
  logger.info({ signal }, 'stopped');
  await new Promise<void>((resolve) => logger.flush(() => resolve()));
  return 0;
}

function send(message: FromWorker): void {
  try {
    process.send?.(message);
  } catch {
    // The primary is gone: the disconnect stops this worker.
  }
}

/** The configuration the primary runs with (the file may have changed since, or be invalid now). */
function configFromPrimary(): Promise<string> {
  return new Promise((resolve, reject) => {
    const on = (m: unknown): void => {
      if (isToWorker(m) && m.t === 'stop') gone();
      if (isToWorker(m) && m.t === 'config') {
        process.off('message', on);
        process.off('disconnect', gone);
        resolve(m.text);
      }
    };
    const gone = (): void => {
      process.off('message', on);
      reject(new Error('the primary process went away or is stopping'));
    };
    process.on('message', on);
    process.once('disconnect', gone);
    send({ t: 'config' });
  });
}

async function answer(app: App, file: string, question: Question): Promise<unknown> {
  switch (question.kind) {
    case 'metrics':
      return app.metrics.text();
    case 'budget':
      return app.budget(question.url);
    case 'counters':
      return app.counters(question.url);
    case 'reload':
      await app.reload(parseConfig(question.text, file));
      return null;
  }
}

/** Resolves when the primary says stop, or goes away (its channel closes). */
function untilPrimaryStops(): Promise<string> {
  return new Promise((resolve) => {
    process.on('message', (m: unknown) => {
      if (isToWorker(m) && m.t === 'stop') resolve('primary');
    });
    process.once('disconnect', () => resolve('disconnect'));
  });
}

/**
 * One worker: the whole sidecar on the shared gRPC port, answering the primary's questions.
 * It always ends with process.exit: the IPC channel would keep it alive otherwise.
 */
export async function serveWorker(file: string): Promise<never> {
  try {
    process.exit(await runWorker(file));
  } catch (err) {
    // Start-up failed (a port, a secret…): said once, and the primary fails its start or retries.
    stderr().write(`tollgate: ${err instanceof ConfigError ? err.message : err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
}

async function runWorker(file: string): Promise<number> {
  const slot = process.env[WORKER_SLOT_ENV];
  // A terminal's hang-up reaches the whole process group: only the primary reloads on it.
  process.on('SIGHUP', () => undefined);
  // Listening for the word to stop before asking for anything, so the answer may be that word.
  const stopped = untilPrimaryStops();
  // No configuration means the primary is stopping or gone: nothing to start.
  const text = await configFromPrimary().catch(() => undefined);
  if (text === undefined) return 0;
  const config = parseConfig(text, file);
  const logger: Logger = createLogger({ level: config.logging.level }).child({ worker: Number(slot) });
  guardProcess(logger);
  // Only workers load the sidecar: the primary stays small.
  const { App } = await import('../app.js');
  const app = await App.start({ config, logger, metricsAddress: null, startedMessage: 'worker started' });
  // Reloads one after another, in the order asked: the last text asked for is the one that runs.
  let reloads: Promise<unknown> = Promise.resolve();
  const ask = (question: Question): Promise<unknown> => {
    if (question.kind !== 'reload') return answer(app, file, question);
    const next = reloads.then(() => answer(app, file, question));
    reloads = next.catch(() => undefined);
    return next;
  };
  process.on('message', (m: unknown) => {
    if (!isToWorker(m) || m.t !== 'ask') return;
    ask(m.question).then(
      (value) => send({ t: 'answer', id: m.id, ok: true, value }),
      (err: unknown) => {
        if (m.question.kind === 'reload') logger.error({ err, file }, 'reload failed; previous configuration stays');
        send({ t: 'answer', id: m.id, ok: false, value: err instanceof Error ? err.message : String(err) });
      },
    );
  });
  send({ t: 'listening', address: app.grpcAddress });
  // The primary's word, or a signal sent to the whole group (Ctrl-C): the same drain.
  const reason = await Promise.race([stopped, untilSignal()]);
  const graceMs = app.config.server.shutdownGraceSeconds * 1000;
  exitWithin(graceMs);
  logger.info({ reason, graceSeconds: graceMs / 1000 }, 'worker shutting down');
  await app.stop(graceMs);
  logger.info({ reason }, 'worker stopped');
  await new Promise<void>((resolve) => logger.flush(() => resolve()));
  return 0;
}
