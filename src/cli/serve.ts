/** `tollgate serve --config FILE`: the sidecar until SIGTERM, reloading the file as it changes. */
import { readFile } from 'node:fs/promises';
import { parseConfig } from '../config/load.js';
import { ConfigError } from '../config/problems.js';
import type { Config } from '../config/schema.js';
import { workerCount } from '../server/workers.js';
import { createLogger } from '../telemetry/logger.js';
import { stderr } from '../telemetry/output.js';
import { guardProcess, loadOrReport, reloadOnChange } from './serve-shared.js';
import { exitWithin, untilSignal } from './signals.js';
import { isClusterWorker, servePrimary, serveWorker } from './serve-workers.js';

/** The configuration file's text and what it says, or undefined once its problems are printed. */
async function readOrReport(file: string): Promise<{ config: Config; text: string } | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    // loadOrReport words the failure exactly as every other command does.
    await loadOrReport(file);
    return undefined;
  }
  try {
    return { config: parseConfig(text, file), text };
  } catch (err) {
    if (err instanceof ConfigError) {
      stderr().write(`${err.message}\n`);
      return undefined;
    }
    throw err;
  }
}

export async function serve(file: string): Promise<number> {
  // A process forked by `server.workers > 1` runs one worker of the primary that forked it.
  if (isClusterWorker()) return serveWorker(file);
  const read = await readOrReport(file);
  if (!read) return 1;
  const { config } = read;
  if (workerCount(config.server.workers) > 1) return servePrimary(file, read.config, read.text);
  const logger = createLogger({ level: config.logging.level });
  guardProcess(logger);
  // Loaded here, not at the top: a cluster primary never needs the sidecar's modules.
  const { App } = await import('../app.js');
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
