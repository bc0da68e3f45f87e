/**
 * Load generators. Saturation: wrk (Debian's `wrk`, closed loop, C connections). Fixed rate:
 * plain wrk cannot pace itself and wrk2 is not packaged, so an open-loop Node client sends on
 * a fixed schedule and times each request from the moment it was written to the end of the
 * response body. Its own overhead is in every number alike, so compare configurations by
 * their difference, not by the absolute value.
 */
import { spawn } from 'node:child_process';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { percentiles, type Percentiles } from './measure.js';
import { BENCH_DIR } from './paths.js';

export interface WrkResult {
  readonly requests: number;
  readonly seconds: number;
  readonly rps: number;
  readonly non2xx: number;
  readonly socketErrors: number;
  /** wrk's own latency percentiles at saturation, ms. */
  readonly p50: number;
  readonly p99: number;
  /** Responses by HTTP status, when the run counted them (`statuses: true`). */
  readonly statuses?: Readonly<Record<string, number>>;
}

function toMs(value: string, unit: string): number {
  const n = Number(value);
  return unit === 'us' ? n / 1000 : unit === 's' ? n * 1000 : unit === 'm' ? n * 60_000 : n;
}

/** Parses wrk's text report. Throws when the summary line is missing. */
export function parseWrk(out: string): WrkResult {
  const summary = /(\d+) requests in ([\d.]+)(us|ms|s|m)/.exec(out);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  if (summary === null || rps === null) throw new Error(`bench: cannot read wrk's output:\n${out}`);
  const pct = (q: string): number => {
    const m = new RegExp(`^\\s+${q}%\\s+([\\d.]+)(us|ms|s|m)`, 'm').exec(out);
    return m === null ? NaN : toMs(m[1] ?? '', m[2] ?? '');
  };
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const socketErrors = sock === null ? 0 : sock.slice(1).reduce((sum, n) => sum + Number(n), 0);
  // Printed by bench/wrk/post.lua's done() with BENCH_STATUSES=1.
  const statuses: Record<string, number> = {};
  for (const m of out.matchAll(/^status (\d+) (\d+)$/gm))
    statuses[m[1] ?? '0'] = (statuses[m[1] ?? '0'] ?? 0) + Number(m[2]);
  return {
    ...(Object.keys(statuses).length > 0 ? { statuses } : {}),
    requests: Number(summary[1]),
    seconds: toMs(summary[2] ?? '', summary[3] ?? '') / 1000,
    rps: Number(rps[1]),
    non2xx,
    socketErrors,
    p50: pct('50'),
    p99: pct('99'),
  };
}

export interface WrkOptions {
  readonly url: string;
  readonly tokensFile: string;
  readonly body: string;
  readonly connections: number;
  readonly threads: number;
  readonly seconds: number;
  /** Count responses by status (a Lua call per response: for the mixed phase, not throughput). */
  readonly statuses?: boolean;
}

export function runWrk(opts: WrkOptions): Promise<WrkResult> {
  const args = [
    '-t',
    String(opts.threads),
    '-c',
    String(opts.connections),
    '-d',
    `${opts.seconds}s`,
  ];
  args.push('--latency', '--timeout', '10s', '-s', join(BENCH_DIR, 'wrk', 'post.lua'), opts.url);
  return new Promise((resolve, reject) => {
    const child = spawn('wrk', args, {
      env: {
        ...process.env,
        BENCH_TOKENS: opts.tokensFile,
        BENCH_BODY: opts.body,
        BENCH_STATUSES: opts.statuses === true ? '1' : '0',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.once('error', (err) =>
      reject(
        new Error(
          `bench: cannot run wrk (${err.message}); install it with scripts/setup.sh or apt-get install wrk`,
        ),
      ),
    );
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`bench: wrk exited with ${code}:\n${out}`));
      try {
        resolve(parseWrk(out));
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
  });
}

export interface FixedRateResult extends Percentiles {
  readonly rate: number;
  readonly ok: number;
  readonly failed: number;
  /** Sends more than 2 ms behind schedule: the client itself could not keep up. */
  readonly late: number;
}

export interface FixedRateOptions {
  readonly url: string;
  readonly tokens: readonly string[];
  readonly body: string;
  readonly rate: number;
  readonly seconds: number;
}

/** Sends `rate` requests per second for `seconds` on a fixed schedule; latencies in ms. */
export async function fixedRate(opts: FixedRateOptions): Promise<FixedRateResult> {
  const target = new URL(opts.url);
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  const total = Math.max(1, Math.round(opts.rate * opts.seconds));
  const interval = 1000 / opts.rate;
  const latencies: number[] = [];
  let ok = 0;
  let failed = 0;
  let late = 0;
  let finished = 0;
  const body = Buffer.from(opts.body);
  let done: () => void = () => undefined;
  const allDone = new Promise<void>((resolve) => (done = resolve));
  const complete = (): void => {
    finished += 1;
    if (finished === total) done();
  };
  const send = (n: number): void => {
    const token = opts.tokens.length === 0 ? undefined : opts.tokens[n % opts.tokens.length];
    const headers: Record<string, string | number> = {
      'content-type': 'application/json',
      'content-length': body.length,
    };
    if (token !== undefined) headers['authorization'] = `Bearer ${token}`;
    const started = performance.now();
    const req = request(
      {
        host: target.hostname,
        port: target.port,
        path: target.pathname,
        method: 'POST',
        agent,
        headers,
      },
      (res) => {
        res.on('data', () => undefined);
        res.once('end', () => {
          latencies.push(performance.now() - started);
          if (res.statusCode === 200) ok += 1;
          else failed += 1;
          complete();
        });
        res.once('error', () => {
          failed += 1;
          complete();
        });
      },
    );
    req.once('error', () => {
      failed += 1;
      complete();
    });
    req.end(body);
  };
  const start = performance.now();
  let next = 0;
  const tick = (): void => {
    const now = performance.now();
    while (next < total && start + next * interval <= now) {
      if (now - (start + next * interval) > 2) late += 1;
      send(next);
      next += 1;
    }
    if (next < total) setTimeout(tick, Math.max(0, start + next * interval - performance.now()));
  };
  tick();
  await allDone;
  agent.destroy();
  return { rate: opts.rate, ok, failed, late, ...percentiles(latencies) };
}
