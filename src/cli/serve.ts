/** `tollgate serve --config FILE`: the sidecar until SIGTERM, reloading the file as it changes. */
import { App } from '../app.js';
import { loadConfigFile } from '../config/load.js';
import { watchConfig } from '../config/watch.js';
import { ConfigError } from '../errors.js';
import { createLogger, type Logger } from '../telemetry/logger.js';
import { untilSignal } from './signals.js';

/** Loads a config file, printing every problem and returning undefined when it is invalid. */
export async function loadOrReport(file: string): Promise<Awaited<ReturnType<typeof loadConfigFile>> | undefined> {
  try {
    return await loadConfigFile(file);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      return undefined;
    }
    throw err;
  }
}

/** One request's failure must never take the process down; log it and keep serving. */
export function guardProcess(logger: Logger): void {
  process.on('unhandledRejection', (reason) => logger.error({ err: reason }, 'unhandled rejection'));
  process.on('uncaughtException', (err) => logger.error({ err }, 'uncaught exception'));
}

/** Watches `file` and reloads `app` on every valid change; invalid ones are logged and ignored. */
export function reloadOnChange(file: string, app: App): { close(): void } {
  return watchConfig(
    file,
    (config) => {
      app.reload(config).catch((err: unknown) => app.logger.error({ err }, 'reload failed; previous configuration stays'));
    },
    (err) => app.logger.error({ problems: err.problems }, 'configuration change refused; previous configuration stays'),
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
  logger.info({ signal }, 'shutting down');
  watcher.close();
  await app.stop();
  logger.flush();
  return 0;
}
