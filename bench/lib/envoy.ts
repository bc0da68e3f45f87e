/**
 * Runs an Envoy from a bootstrap the benchmark wrote itself. `src/stack/envoy.ts` renders only
 * the stack template; the baseline, native-filter and upstream Envoys need other documents.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { findEnvoyBinary, waitForEnvoy } from '../../src/stack/envoy.js';

export interface BenchEnvoy {
  readonly pid: number;
  /** `http://127.0.0.1:<port>` of the listener named `ingress`. */
  readonly url: string;
  readonly adminUrl: string;
  stop(): Promise<void>;
}

/** Starts Envoy on `yaml` (admin and listener on port 0) and waits until `ingress` is bound. */
export async function startBenchEnvoy(
  yaml: string,
  opts: { concurrency: number },
): Promise<BenchEnvoy> {
  const dir = await mkdtemp(join(tmpdir(), 'tollgate-bench-envoy-'));
  const configPath = join(dir, 'envoy.yaml');
  const adminPath = join(dir, 'admin-address');
  await writeFile(configPath, yaml);
  const args = ['-c', configPath, '--admin-address-path', adminPath, '--log-level', 'warn'];
  // Several Envoys run at once: no hot restart, or they would fight over base id 0.
  args.push('--disable-hot-restart', '--concurrency', String(opts.concurrency));
  const proc = spawn(findEnvoyBinary(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const tail: string[] = [];
  for (const stream of [proc.stdout, proc.stderr]) {
    createInterface({ input: stream }).on('line', (line) => {
      tail.push(line);
      if (tail.length > 30) tail.shift();
    });
  }
  const killOnExit = (): void => {
    proc.kill('SIGKILL');
  };
  process.on('exit', killOnExit);
  const exited = new AbortController();
  const exitedPromise = new Promise<void>((resolve) => {
    proc.once('exit', (code, signal) => {
      process.off('exit', killOnExit);
      exited.abort(new Error(`envoy exited (code ${code}, signal ${signal})`));
      resolve();
    });
  });
  const stop = async (): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exitedPromise;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const wait = { timeoutMs: 20_000, intervalMs: 20, signal: exited.signal };
    const { adminUrl, port } = await waitForEnvoy(adminPath, wait);
    if (proc.pid === undefined) throw new Error('envoy has no pid');
    return { pid: proc.pid, url: `http://127.0.0.1:${port}`, adminUrl, stop };
  } catch (err) {
    await stop();
    const why = err instanceof Error ? err.message : String(err);
    throw new Error(`envoy failed to start: ${why}\n${tail.join('\n')}`, { cause: err });
  }
}
