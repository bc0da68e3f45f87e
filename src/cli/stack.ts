/** `tollgate stack --config FILE --upstream URL [--port N]`. */
import { runStack, readyLine } from '../stack/run.js';
import { createLogger } from '../telemetry/logger.js';
import { stdout } from '../telemetry/output.js';
import { guardProcess, loadOrReport, reloadOnChange } from './serve-shared.js';
import { exitWithin, untilSignal } from './signals.js';

export async function stackCommand(file: string, upstreamUrl: string, port: number): Promise<number> {
  const config = await loadOrReport(file);
  if (!config) return 1;
  // stdout carries only the ready line; logs go to stderr.
  const logger = createLogger({ level: config.logging.level, destination: process.stderr });
  guardProcess(logger);
  const stack = await runStack({ config, upstreamUrl, port, logger });
  const watcher = reloadOnChange(file, stack.app);
  stdout().write(readyLine(stack));
  const signal = await untilSignal();
  const graceMs = stack.app.config.server.shutdownGraceSeconds * 1000;
  exitWithin(graceMs);
  logger.info({ signal }, 'stopping stack');
  watcher.close();
  await stack.stop(graceMs);
  return 0;
}
