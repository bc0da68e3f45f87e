/**
 * Child processes for integration and e2e tests: spawn, wait for a line or for readiness, and
 * always stop. Every process spawned here is tracked; call `stopAll()` in an `after` hook (or
 * use `stopAllAfter()` inside a describe) so a failing test never leaves one running.
 */
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface Spawned {
  readonly proc: ChildProcess;
  /** Every stdout line so far. */
  readonly stdout: readonly string[];
  /** Every stderr line so far. */
  readonly stderr: readonly string[];
  /** Resolves with the first line (past or future) on `stream` that matches. */
  waitForLine(
    pattern: RegExp | string,
    options?: { stream?: 'stdout' | 'stderr'; timeoutMs?: number },
  ): Promise<string>;
  /** Resolves when the process exits (immediately when it already has). */
  waitForExit(timeoutMs?: number): Promise<Exit>;
  /** `signal` (default SIGTERM), then SIGKILL after `graceMs`; resolves on exit. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<Exit>;
}

const running = new Set<Spawned>();

function matches(line: string, pattern: RegExp | string): boolean {
  return typeof pattern === 'string' ? line.includes(pattern) : pattern.test(line);
}

export function spawnTracked(
  command: string,
  args: readonly string[],
  options: SpawnOptions = {},
): Spawned {
  const proc = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  const lines = { stdout: [] as string[], stderr: [] as string[] };
  const waiters = new Set<{ stream: 'stdout' | 'stderr'; test(line: string): void }>();
  for (const stream of ['stdout', 'stderr'] as const) {
    const source = proc[stream];
    if (source === null) continue;
    createInterface({ input: source }).on('line', (line) => {
      lines[stream].push(line);
      for (const waiter of [...waiters]) if (waiter.stream === stream) waiter.test(line);
    });
  }
  let exit: Exit | undefined;
  const exited = new Promise<Exit>((resolve) => {
    proc.once('exit', (code, signal) => {
      exit = { code, signal };
      resolve(exit);
    });
    proc.once('error', () => {
      exit = { code: null, signal: null };
      resolve(exit);
    });
  });

  const describeOutput = (): string =>
    `\n--- stdout ---\n${lines.stdout.slice(-30).join('\n')}\n--- stderr ---\n${lines.stderr.slice(-30).join('\n')}`;

  const spawned: Spawned = {
    proc,
    stdout: lines.stdout,
    stderr: lines.stderr,
    waitForLine(pattern, { stream = 'stdout', timeoutMs = 15_000 } = {}) {
      const seen = lines[stream].find((line) => matches(line, pattern));
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const done = (fn: () => void): void => {
          clearTimeout(timer);
          waiters.delete(waiter);
          fn();
        };
        const waiter = {
          stream,
          test: (line: string) => {
            if (matches(line, pattern)) done(() => resolve(line));
          },
        };
        const timer = setTimeout(
          () =>
            done(() =>
              reject(new Error(`timed out waiting for ${String(pattern)}${describeOutput()}`)),
            ),
          timeoutMs,
        );
        waiters.add(waiter);
        void exited.then((e) =>
          done(() =>
            reject(
              new Error(
                `process exited (${e.code ?? e.signal}) before ${String(pattern)}${describeOutput()}`,
              ),
            ),
          ),
        );
      });
    },
    waitForExit(timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`process did not exit in ${timeoutMs} ms`)),
          timeoutMs,
        );
        void exited.then((e) => {
          clearTimeout(timer);
          resolve(e);
        });
      });
    },
    async stop(signal = 'SIGTERM', graceMs = 5000) {
      if (exit === undefined) {
        proc.kill(signal);
        const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
      running.delete(spawned);
      return exit ?? (await exited);
    },
  };
  running.add(spawned);
  return spawned;
}

/** A cleanup function (e.g. an Envoy's `stop`) to run in `stopAll()`, newest first. */
const cleanups: Array<() => Promise<unknown>> = [];
export function onStopAll(cleanup: () => Promise<unknown>): void {
  cleanups.push(cleanup);
}

/** Stops every tracked process and runs every registered cleanup; never throws. */
export async function stopAll(): Promise<void> {
  const pending = cleanups.splice(0).reverse();
  for (const cleanup of pending) await cleanup().catch(() => undefined);
  await Promise.all([...running].map((p) => p.stop().catch(() => undefined)));
}

/** Registers `stopAll` as an `after` hook of the enclosing describe. */
export function stopAllAfter(): void {
  after(stopAll);
}

/**
 * Whether `pid` is a live process (Linux `/proc`). A zombie counts as gone: an orphan killed
 * with its parent may wait a moment for init to reap it.
 */
export function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // `pid (comm) state …`: comm may hold spaces and parentheses; the state follows the last ')'.
    const state = stat.charAt(stat.lastIndexOf(')') + 2);
    return state !== 'Z';
  } catch {
    return false;
  }
}

/** The pids of `pid`'s children whose command name is `name` (e.g. `envoy`), from `ps`. */
export async function childPidsNamed(pid: number, name: string): Promise<number[]> {
  const ps = promisify(execFile);
  const args = ['-o', 'pid=,comm=', '--ppid', String(pid)];
  const { stdout } = await ps('ps', args).catch(() => ({ stdout: '' }));
  return stdout
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter(([child, comm]) => child !== undefined && comm === name)
    .map(([child]) => Number(child));
}
