/** `tollgate serve --config FILE`: the sidecar until SIGTERM, reloading the file as it changes. */
import { App } from '../app.js';
import { loadConfigFile } from '../config/load.js';
import { watchConfig } from '../config/watch.js';
import { ConfigError } from '../config/problems.js';
import { createLogger, type Logger } from '../telemetry/logger.js';
import { stderr, stdout } from '../telemetry/output.js';
import { exitWithin, untilSignal } from './signals.js';

/** Loads a config file, printing every problem and returning undefined when it is invalid. */
export async function loadOrReport(file: string): Promise<Awaited<ReturnType<typeof loadConfigFile>> | undefined> {
  try {
    return await loadConfigFile(file);
  } catch (err) {
    if (err instanceof ConfigError) {
      stderr().write(`${err.message}\n`);
      return undefined;
    }
    throw err;
  }
}

/**
 * One request's failure must never take the process down; log it and keep serving. The
 * logger drops its lines once its output broke, so logging an error can never cause another.
 */
export function guardProcess(logger: Logger): void {
  // A write to a dead stdout or stderr (ours or a library's) must not become an uncaught exception.
  stdout();
  stderr();
  const report = (err: unknown, what: string): void => {
    try {
      logger.error({ err }, what);
    } catch {
      // Nowhere left to report it.
    }
  };
  process.on('unhandledRejection', (reason) => report(reason, 'unhandled rejection'));
  process.on('uncaughtException', (err) => report(err, 'uncaught exception'));
}

/**
 * Watches `file` and reloads `app` on every valid change; invalid ones are logged with every
 * problem, counted, and ignored. Reloads run one after another: two quick edits must not race,
 * or the older file could finish building last and win.
 */
export function reloadOnChange(file: string, app: App): { close(): void } {
  let queue: Promise<void> = Promise.resolve();
  return watchConfig(
    file,
    (config) => {
      queue = queue.then(() =>
        app.reload(config).then(
          () => app.metrics.recordReload('success'),
          (err: unknown) => {
            app.metrics.recordReload('rejected');
            app.logger.error({ err, file }, 'reload failed; previous configuration stays');
          },
        ),
      );
    },
    (err) => {
      app.metrics.recordReload('rejected');
      // `problems` for machines, `error` as check-config prints it (path:line per problem).
      app.logger.error(
        { file, problems: err.problems, error: err.message },
        'configuration change refused; previous configuration stays',
      );
    },
  );
}

export async function serve(file: string): Promise<number> {
  const config = await loadOrReport(file);
  if (!config) return 1;
  const logger = createLogger({ level: config.logging.level });
  guardProcess(logger);
  const app = await App.start({ config, logger });
  const watcher = reloadOnChange(file, app);
  const signal = await untilSignal();
  const graceMs = app.config.server.shutdownGraceSeconds * 1000;
  exitWithin(graceMs);
  logger.info({ signal, graceSeconds: graceMs / 1000 }, 'shutting down');
  watcher.close();
  await app.stop(graceMs);
  logger.info({ signal }, 'stopped');
  await new Promise<void>((resolve) => logger.flush(() => resolve()));
  return 0;
}
