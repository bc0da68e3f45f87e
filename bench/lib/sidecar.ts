/**
 * Runs the sidecar as its own process, so its CPU time and memory can be read from /proc
 * apart from Envoy and the load generators. The entry (bench/sidecar.ts) is bundled once with
 * esbuild (tsx's own compiler) and run by plain node: tsx's loader thread would add about
 * 35 MB of resident memory that a deployed sidecar does not have. The bundle lives under
 * node_modules/.cache so that proto/ and envoy/ are still found by walking up from it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { memoryMiB } from './measure.js';
import { ROOT } from './paths.js';

const BUNDLE_DIR = join(ROOT, 'node_modules', '.cache', 'tollgate-bench');

/**
 * The V8 flags the image runs the sidecar with (the Dockerfile's NODE_OPTIONS), so the
 * benchmark measures the memory and pauses of the deployed process.
 */
export function imageNodeOptions(): string[] {
  const flag = /\bNODE_OPTIONS=(\S+)/.exec(dockerfile())?.[1];
  return flag === undefined ? [] : [flag];
}

/**
 * The flags the image's ENTRYPOINT gives node itself, before the script: those NODE_OPTIONS
 * does not accept (`--single-threaded-gc`).
 */
export function imageEntryFlags(): string[] {
  const entry = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(dockerfile())?.[1] ?? '[]') as string[];
  return entry.slice(1).filter((arg) => arg.startsWith('--'));
}

function dockerfile(): string {
  return readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
}
let bundled: Promise<string[]> | undefined;

/** The node arguments that start the sidecar entry: the bundle, or tsx when esbuild is missing. */
function sidecarCommand(): Promise<string[]> {
  bundled ??= (async () => {
    const entry = join(ROOT, 'bench', 'sidecar.ts');
    try {
      const esbuild = await import('esbuild');
      // One bundle per benchmark process: two runs at once must not overwrite each other's.
      // Split at dynamic imports, as the unbundled build loads them: what the sidecar imports
      // only when configured (the Redis client, the trace exporter) stays unloaded here too.
      const outdir = join(BUNDLE_DIR, `sidecar-${process.pid}`);
      process.once('exit', () => rmSync(outdir, { recursive: true, force: true }));
      await esbuild.build({
        entryPoints: [entry],
        outdir,
        bundle: true,
        splitting: true,
        platform: 'node',
        format: 'esm',
        target: 'node20',
        packages: 'external',
        sourcemap: true,
        logLevel: 'error',
        outExtension: { '.js': '.mjs' },
      });
      return [join(outdir, 'sidecar.mjs')];
    } catch {
      return ['--import', 'tsx', entry];
    }
  })();
  return bundled;
}

export interface Sidecar {
  readonly pid: number;
  readonly grpcPort: number;
  readonly grpc: string;
  readonly logFile: string;
  /** Resident memory when it became ready, before any request: the fixed cost. */
  readonly startMiB: number;
  /** Memory retained after a full garbage collection, MiB (asks the sidecar; see bench/sidecar.ts). */
  memoryAfterGc(): Promise<{ rss: number; heapUsed: number }>;
  /** The first error the sidecar logged, for failure messages. */
  firstError(): string | undefined;
  stop(): Promise<void>;
}

/** `msg: err.message` of the first error-level line of a pino log file. */
function firstErrorIn(file: string): string | undefined {
  if (!existsSync(file)) return undefined;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.includes('"level":"error"') && !line.includes('"level":"fatal"')) continue;
    try {
      const entry = JSON.parse(line) as { msg?: string; err?: { message?: string } };
      return `${entry.msg ?? 'error'}: ${entry.err?.message ?? ''}`.trim();
    } catch {
      return line.slice(0, 300);
    }
  }
  return undefined;
}

export interface SidecarOptions {
  readonly config: string;
  /** Working directory for the config and log files. */
  readonly dir: string;
  readonly noTokenCache?: boolean;
  /** Extra node flags, e.g. `--cpu-prof`. */
  readonly nodeFlags?: readonly string[];
  readonly env?: Record<string, string>;
}

export async function startSidecar(opts: SidecarOptions): Promise<Sidecar> {
  const configFile = join(opts.dir, 'tollgate.yaml');
  const logFile = join(opts.dir, 'sidecar.log');
  await writeFile(configFile, opts.config);
  // --expose-gc only makes gc() callable (for memoryAfterGc); it changes no collection policy.
  const args = [
    '--expose-gc',
    ...imageNodeOptions(),
    ...imageEntryFlags(),
    ...(opts.nodeFlags ?? []),
    ...(await sidecarCommand()),
    '--config',
    configFile,
  ];
  if (opts.noTokenCache === true) args.push('--no-token-cache');
  // Logs (one audit line per decision at info) go to a file, as in production, not through a
  // pipe into the benchmark's own process.
  const logFd = openSync(logFile, 'a');
  const child: ChildProcess = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', logFd, 'pipe'],
  });
  closeSync(logFd);
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.on('exit', killOnExit);
  const stderr: string[] = [];
  const memoryWaiters: ((line: string) => void)[] = [];
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ready = await new Promise<{ grpc: string; grpcPort: number }>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`bench: sidecar not ready in 30 s:\n${stderr.join('\n')}`)),
      30_000,
    );
    if (child.stderr === null) return reject(new Error('bench: sidecar has no stderr pipe'));
    createInterface({ input: child.stderr }).on('line', (line) => {
      if (line.includes('"event":"memory"')) {
        memoryWaiters.shift()?.(line);
        return;
      }
      stderr.push(line);
      if (!line.includes('"event":"ready"')) return;
      clearTimeout(timer);
      resolve(JSON.parse(line) as { grpc: string; grpcPort: number });
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`bench: sidecar exited before it was ready:\n${stderr.join('\n')}`));
    });
  });
  if (child.pid === undefined) throw new Error('bench: sidecar has no pid');
  return {
    pid: child.pid,
    ...ready,
    startMiB: memoryMiB(child.pid).rss,
    logFile,
    firstError: () => firstErrorIn(logFile),
    memoryAfterGc: () =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error('bench: the sidecar did not report its memory')),
          10_000,
        );
        memoryWaiters.push((line) => {
          clearTimeout(timer);
          const m = JSON.parse(line) as { rss: number; heapUsed: number };
          resolve({ rss: m.rss / 2 ** 20, heapUsed: m.heapUsed / 2 ** 20 });
        });
        child.kill('SIGUSR2');
      }),
    async stop() {
      await terminate(child);
      process.off('exit', killOnExit);
    },
  };
}

/** SIGTERM, then SIGKILL after 5 s; resolves once the process is gone (at once if it already is). */
export async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}
