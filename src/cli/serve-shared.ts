/**
 * What `serve` (one process, or a cluster's primary and workers), `stack` and `demo` share:
 * loading the configuration with every problem printed, keeping the process up whatever one
 * request does, and reloading on change.
 */
import { loadConfigFile } from '../config/load.js';
import { watchConfig } from '../config/watch.js';
import { ConfigError } from '../config/problems.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import { stderr, stdout } from '../telemetry/output.js';

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

/** What a configuration change is applied to: the App, or the cluster primary (its workers). */
export interface ReloadTarget {
  /** `text`: the file content `config` was read from. */
  reload(config: Config, text: string): Promise<void>;
  readonly metrics: Pick<Metrics, 'recordReload'>;
  readonly logger: Logger;
}

/**
 * Watches `file` and reloads `app` on every valid change; invalid ones are logged with every
 * problem, counted, and ignored. Reloads run one after another: two quick edits must not race,
 * or the older file could finish building last and win. SIGHUP re-reads the file at once.
 */
export function reloadOnChange(file: string, app: ReloadTarget): { close(): void } {
  let queue: Promise<void> = Promise.resolve();
  const watcher = watchConfig(
    file,
    (config, text) => {
      queue = queue.then(() =>
        app.reload(config, text).then(
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
  const reread = (): void => watcher.reread();
  process.on('SIGHUP', reread);
  return {
    close: () => {
      process.off('SIGHUP', reread);
      watcher.close();
    },
  };
}
