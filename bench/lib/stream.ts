/**
 * Benchmark (e): streams through two Envoys at once, one straight to the upstream and one
 * through Tollgate, alternating, so machine noise falls on both alike. For each chunk the
 * client knows when the upstream wrote it (`x_sent_ns`, monotonic clock) and when it arrived.
 */
import { spawn } from 'node:child_process';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { percentiles, type Percentiles } from './measure.js';
import { BENCH_DIR } from './paths.js';

export interface SseUpstream {
  readonly url: string;
  stop(): Promise<void>;
}

export async function startSseUpstream(chunks: number, delayMs: number): Promise<SseUpstream> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(BENCH_DIR, 'sse-upstream.ts'),
      '--chunks',
      String(chunks),
      '--delay-ms',
      String(delayMs),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.on('exit', killOnExit);
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      process.off('exit', killOnExit);
      resolve();
    }),
  );
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error('bench: SSE upstream not ready in 20 s')),
      20_000,
    );
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (!line.includes('"ready"')) return;
      clearTimeout(timer);
      resolve((JSON.parse(line) as { url: string }).url);
    });
    void exited.then(() => reject(new Error('bench: SSE upstream exited early')));
  });
  return {
    url,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

interface StreamSample {
  readonly ttftMs: number;
  readonly transitsMs: number[];
  readonly ok: boolean;
}

const now = (): bigint => process.hrtime.bigint();
const ms = (ns: bigint): number => Number(ns) / 1e6;

/** One streaming chat completion; resolves when the stream ends. */
function oneStream(
  url: string,
  token: string | undefined,
  agent: Agent,
  chunks: number,
): Promise<StreamSample> {
  const target = new URL('/v1/chat/completions', url);
  const body = JSON.stringify({
    model: 'gpt-4o-mini',
    stream: true,
    messages: [{ role: 'user', content: 'Say hello' }],
  });
  return new Promise((resolve) => {
    const headers: Record<string, string | number> = {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
    };
    if (token !== undefined) headers['authorization'] = `Bearer ${token}`;
    const transits: number[] = [];
    let ttft = NaN;
    let done = false;
    let pending = '';
    const started = now();
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
        res.setEncoding('utf8');
        res.on('data', (text: string) => {
          const arrived = now();
          pending += text;
          let end: number;
          while ((end = pending.indexOf('\n\n')) >= 0) {
            const event = pending.slice(0, end);
            pending = pending.slice(end + 2);
            const data = event.startsWith('data: ') ? event.slice(6) : '';
            if (data === '[DONE]') {
              done = true;
              continue;
            }
            const sent = /"x_sent_ns":"(\d+)"/.exec(data)?.[1];
            if (sent === undefined) continue;
            if (transits.length === 0) ttft = ms(arrived - started);
            transits.push(ms(arrived - BigInt(sent)));
          }
        });
        res.once('end', () =>
          resolve({
            ttftMs: ttft,
            transitsMs: transits,
            ok: res.statusCode === 200 && done && transits.length === chunks,
          }),
        );
        res.once('error', () => resolve({ ttftMs: ttft, transitsMs: transits, ok: false }));
      },
    );
    req.once('error', () => resolve({ ttftMs: NaN, transitsMs: [], ok: false }));
    req.end(body);
  });
}

export interface StreamSide {
  readonly streams: number;
  readonly failed: number;
  readonly ttft: Percentiles;
  readonly transit: Percentiles;
}

export interface StreamResult {
  readonly chunks: number;
  readonly delayMs: number;
  readonly direct: StreamSide;
  readonly tollgate: StreamSide;
  /** Median (and p99) of Tollgate minus direct, ms. */
  readonly addedTtftP50: number;
  readonly addedTtftP99: number;
  readonly addedChunkP50: number;
  readonly addedChunkP99: number;
}

function side(samples: StreamSample[]): StreamSide {
  const good = samples.filter((s) => s.ok);
  return {
    streams: samples.length,
    failed: samples.length - good.length,
    ttft: percentiles(good.map((s) => s.ttftMs)),
    transit: percentiles(good.flatMap((s) => s.transitsMs)),
  };
}

export interface StreamRunOptions {
  readonly directUrl: string;
  readonly tollgateUrl: string;
  readonly tokens: readonly string[];
  readonly streams: number;
  /** Streams in flight on each side. */
  readonly concurrency: number;
  readonly chunks: number;
  readonly delayMs: number;
}

export async function runStreams(opts: StreamRunOptions): Promise<StreamResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const direct: StreamSample[] = [];
  const tollgate: StreamSample[] = [];
  let next = 0;
  // Each worker alternates sides, so both see the same moments of the run.
  const worker = async (): Promise<void> => {
    while (next < opts.streams * 2) {
      const n = next++;
      const viaTollgate = n % 2 === 1;
      const token = opts.tokens[Math.floor(n / 2) % opts.tokens.length];
      const sample = await oneStream(
        viaTollgate ? opts.tollgateUrl : opts.directUrl,
        token,
        agent,
        opts.chunks,
      );
      (viaTollgate ? tollgate : direct).push(sample);
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency * 2 }, worker));
  agent.destroy();
  const d = side(direct);
  const t = side(tollgate);
  return {
    chunks: opts.chunks,
    delayMs: opts.delayMs,
    direct: d,
    tollgate: t,
    addedTtftP50: t.ttft.p50 - d.ttft.p50,
    addedTtftP99: t.ttft.p99 - d.ttft.p99,
    addedChunkP50: t.transit.p50 - d.transit.p50,
    addedChunkP99: t.transit.p99 - d.transit.p99,
  };
}
