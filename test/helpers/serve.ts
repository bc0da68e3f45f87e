/**
 * `tollgate serve` as its own process (from the TS sources, like the stack helper) and real
 * Envoy started by the test in front of it. Unlike `tollgate stack`, a signal to the sidecar
 * leaves Envoy running, which is what the life-cycle tests need. Stop both in `after` hooks.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/load.js';
import { startEnvoy, type RunningEnvoy } from '../../src/stack/envoy.js';
import { stackBootstrapOptions } from '../../src/stack/run.js';
import { spawnTracked, type Exit, type Spawned } from './processes.js';
import { ROOT, SOURCE_CLI } from './stack.js';

export interface ServeProcess {
  readonly proc: Spawned;
  readonly dir: string;
  /** host:port of the gRPC server (from the `tollgate started` line). */
  readonly grpc: string;
  readonly metricsUrl: string | undefined;
  /** Parsed JSON log lines written so far (serve logs to stdout). */
  logLines(): Record<string, unknown>[];
  /** Raw stdout + stderr so far. */
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<Exit>;
}

/** Spawns the sidecar; resolves once it logged `tollgate started` (unless `waitStarted` is false). */
export async function startServe(opts: {
  config: string;
  env?: Record<string, string>;
  waitStarted?: boolean;
  timeoutMs?: number;
}): Promise<ServeProcess> {
  const dir = await mkdtemp(join(tmpdir(), 'tollgate-serve-'));
  const configPath = join(dir, 'tollgate.yaml');
  await writeFile(configPath, opts.config);
  const proc = spawnTracked(process.execPath, [...SOURCE_CLI, 'serve', '--config', configPath], {
    cwd: ROOT,
    env: { ...process.env, ...opts.env },
  });
  const logLines = (): Record<string, unknown>[] =>
    proc.stdout.flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
  let started: Record<string, unknown> = {};
  if (opts.waitStarted !== false) {
    const line = await proc.waitForLine('tollgate started', {
      timeoutMs: opts.timeoutMs ?? 30_000,
    });
    started = JSON.parse(line) as Record<string, unknown>;
  }
  return {
    proc,
    dir,
    grpc: typeof started['grpc'] === 'string' ? started['grpc'] : '',
    metricsUrl: typeof started['metrics'] === 'string' ? started['metrics'] : undefined,
    logLines,
    output: () => [...proc.stdout, ...proc.stderr].join('\n'),
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      const exit = await proc.stop(signal, 15_000);
      await rm(dir, { recursive: true, force: true });
      return exit;
    },
  };
}

/**
 * Real Envoy in front of a sidecar on `grpcPort`, rendered exactly as `tollgate stack` does; its
 * output goes to `lines`. `concurrency`: Envoy's worker threads (default 2, as the stack).
 */
export async function startEnvoyFor(
  configYaml: string,
  grpcPort: number,
  upstreamUrl: string,
  opts: { concurrency?: number } = {},
): Promise<{ envoy: RunningEnvoy; lines: string[] }> {
  const lines: string[] = [];
  const envoy = await startEnvoy({
    ...stackBootstrapOptions(parseConfig(configYaml), grpcPort, upstreamUrl, 0),
    logLevel: 'info',
    onLog: (line) => lines.push(line),
    ...(opts.concurrency !== undefined ? { concurrency: opts.concurrency } : {}),
  });
  return { envoy, lines };
}

/** Polls `probe` until it returns a value (not undefined), or fails after `timeoutMs`. */
export async function eventually<T>(
  probe: () => T | undefined | Promise<T | undefined>,
  what: string,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
