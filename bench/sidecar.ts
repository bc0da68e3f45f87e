/**
 * The sidecar as the benchmark runs it: what `tollgate serve` runs (App.start on a config
 * file, logs to stdout at the configured level), without the file watcher, plus one bench-only
 * switch. Prints `{"event":"ready","grpc":"host:port"}` on stderr when it can take calls, and
 * `{"event":"memory",…}` after a full garbage collection on SIGUSR2.
 *
 *   node bench-sidecar.mjs --config FILE [--no-token-cache]
 */
import { parseArgs } from 'node:util';
import { App } from '../src/app.js';
import { loadConfigFile } from '../src/config/load.js';
import { VerifiedTokenCache } from '../src/identity/token-cache.js';
import { createLogger } from '../src/telemetry/logger.js';

const { values } = parseArgs({
  options: { config: { type: 'string' }, 'no-token-cache': { type: 'boolean' } },
  strict: true,
});
if (values.config === undefined) throw new Error('bench sidecar: --config FILE is required');
if (values['no-token-cache'] === true) {
  // Exactly what `cacheSize: 0` does (set() returns early), without a product option: every
  // Check then pays for a full signature verification.
  VerifiedTokenCache.prototype.set = () => undefined;
}
const config = await loadConfigFile(values.config);
const logger = createLogger({ level: config.logging.level });
const app = await App.start({ config, logger });
process.stderr.write(
  `${JSON.stringify({ event: 'ready', grpc: app.grpcAddress, grpcPort: app.grpcPort })}\n`,
);

// Bench-only: on SIGUSR2, collect garbage (when node runs with --expose-gc) and report the
// memory that is really retained, apart from what V8 has not bothered to collect yet.
process.on('SIGUSR2', () => {
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  process.stderr.write(
    `${JSON.stringify({ event: 'memory', rss: m.rss, heapUsed: m.heapUsed, external: m.external })}\n`,
  );
});

const stop = (): void => {
  void app.stop(1000).finally(() => {
    logger.flush();
    process.exit(0);
  });
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
