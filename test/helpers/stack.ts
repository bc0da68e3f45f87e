/**
 * Runs the real `tollgate stack` CLI (built JS, real Envoy) as a child process for end-to-end
 * tests, with a config file written to a temp dir. Always stop it in an `after` hook.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

export const ROOT = resolve(import.meta.dirname, '..', '..');
/** The built executable, as installed (`npm test` builds first). */
export const MAIN = join(ROOT, 'dist', 'src', 'main.js');
/**
 * End-to-end stacks run the TypeScript sources through tsx, so a test never sees a stale or
 * half-written `dist/`; `test/e2e/cli.test.ts` covers the built executable itself.
 */
export const SOURCE_CLI = ['--import', 'tsx', join(ROOT, 'src', 'main.ts')];

export interface ReadyLine {
  event: 'ready';
  envoy: string;
  grpc: string;
  metrics: string | null;
}

export interface StackProcess {
  readonly ready: ReadyLine;
  readonly proc: ChildProcess;
  readonly configPath: string;
  readonly dir: string;
  /** stderr lines (pino JSON logs) seen so far. */
  readonly logs: string[];
  /** Parsed JSON log lines. */
  logLines(): Record<string, unknown>[];
  /** Replace the config file's content (atomic rename, like an editor or kubectl would). */
  writeConfig(yaml: string): Promise<void>;
  stop(): Promise<number | null>;
}

export async function startStack(opts: {
  config: string;
  upstream: string;
  env?: Record<string, string>;
  port?: number;
  timeoutMs?: number;
}): Promise<StackProcess> {
  const dir = await mkdtemp(join(tmpdir(), 'tollgate-e2e-'));
  const configPath = join(dir, 'tollgate.yaml');
  await writeFile(configPath, opts.config);
  const proc = spawn(
    process.execPath,
    [...SOURCE_CLI, 'stack', '--config', configPath, '--upstream', opts.upstream, '--port', String(opts.port ?? 0)],
    { cwd: ROOT, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const logs: string[] = [];
  createInterface({ input: proc.stderr }).on('line', (l) => logs.push(l));
  const stdout: string[] = [];
  const ready = await new Promise<ReadyLine>((resolveReady, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`stack not ready in time; stderr:\n${logs.slice(-20).join('\n')}`));
    }, opts.timeoutMs ?? 20000);
    createInterface({ input: proc.stdout }).on('line', (line) => {
      stdout.push(line);
      try {
        const parsed = JSON.parse(line) as ReadyLine;
        if (parsed.event === 'ready') {
          clearTimeout(timer);
          resolveReady(parsed);
        }
      } catch {
        /* not the ready line */
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`stack exited early with ${code}; stderr:\n${logs.slice(-20).join('\n')}`));
    });
  });
  return {
    ready,
    proc,
    configPath,
    dir,
    logs,
    logLines: () =>
      logs.flatMap((l) => {
        try {
          return [JSON.parse(l) as Record<string, unknown>];
        } catch {
          return [];
        }
      }),
    async writeConfig(yaml: string) {
      const tmp = `${configPath}.tmp`;
      await writeFile(tmp, yaml);
      const { rename } = await import('node:fs/promises');
      await rename(tmp, configPath);
    },
    async stop() {
      if (proc.exitCode !== null) return proc.exitCode;
      const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10000);
      const code = await exited;
      clearTimeout(timer);
      await rm(dir, { recursive: true, force: true });
      return code;
    },
  };
}

/**
 * The admin URL of the Envoy a stack started (its child process, found by its
 * `--admin-address-path`; Linux /proc), for tests that read Envoy's own counters.
 */
export async function envoyAdminUrl(stack: StackProcess): Promise<string> {
  const { readdir, readFile } = await import('node:fs/promises');
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== stack.proc.pid) continue;
      const args = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
      const at = args.indexOf('--admin-address-path');
      if (at >= 0) return `http://${(await readFile(args[at + 1]!, 'utf8')).trim()}`;
    } catch {
      // the process ended while we looked
    }
  }
  throw new Error('the stack runs no Envoy with an admin address');
}

/** Envoy's ext_proc counters (every ext_proc filter of the ingress listener counts together). */
export async function extProcStats(stack: StackProcess): Promise<Record<string, number>> {
  const text = await (await fetch(`${await envoyAdminUrl(stack)}/stats?filter=ext_proc`)).text();
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^http\.ingress\.ext_proc\.(\w+): (\d+)$/.exec(line.trim());
    if (m) out[m[1]!] = Number(m[2]);
  }
  return out;
}
