/**
 * The Check RPC measured directly: a grpc-js client keeps N calls in flight against the sidecar
 * alone (no Envoy), as Envoy's ext_authz filter would, cycling through the users' tokens.
 */
import { randomUUID } from 'node:crypto';
import { credentials, makeClientConstructor, type Client, type ServiceError } from '@grpc/grpc-js';
import { services, type CheckRequest, type CheckResponse } from '../../src/edge/protos.js';
import { cpuSeconds, memoryMiB, percentiles, type Percentiles } from './measure.js';

type CheckFn = (
  req: CheckRequest,
  cb: (err: ServiceError | null, res?: CheckResponse) => void,
) => void;

export interface CheckClient {
  check(req: CheckRequest): Promise<CheckResponse>;
  close(): void;
}

export function checkClient(address: string): CheckClient {
  const Ctor = makeClientConstructor(services().authorization, 'Authorization');
  const client = new Ctor(address, credentials.createInsecure()) as unknown as Client & {
    Check: CheckFn;
  };
  return {
    check: (req) =>
      new Promise((resolve, reject) =>
        client.Check(req, (err, res) =>
          err !== null || res === undefined
            ? reject(err ?? new Error('no response'))
            : resolve(res),
        ),
      ),
    close: () => client.close(),
  };
}

/** A CheckRequest shaped like the ones Envoy sends for a chat completion. */
export function checkRequest(token: string, body: string): CheckRequest {
  const id = randomUUID();
  return {
    attributes: {
      source: { address: { socket_address: { address: '127.0.0.1', port_value: 40000 } } },
      request: {
        http: {
          id,
          method: 'POST',
          path: '/v1/chat/completions',
          host: 'bench.local',
          scheme: 'http',
          protocol: 'HTTP/1.1',
          size: body.length,
          headers: {
            ':authority': 'bench.local',
            ':method': 'POST',
            ':path': '/v1/chat/completions',
            ':scheme': 'http',
            authorization: `Bearer ${token}`,
            'content-type': 'application/json',
            'content-length': String(body.length),
            'x-request-id': id,
          },
          body,
        },
      },
    },
  };
}

export interface CheckRunResult extends Percentiles {
  readonly users: number;
  readonly checksPerSecond: number;
  readonly allowed: number;
  readonly denied: number;
  readonly failed: number;
  /** Sidecar CPU per Check, µs. */
  readonly cpuUs: number;
  readonly rssMiB: number;
  readonly peakMiB: number;
  /** Resident and heap MiB after a full garbage collection at the end of the run. */
  readonly afterGc?: { rss: number; heapUsed: number };
}

export interface CheckRunOptions {
  readonly client: CheckClient;
  readonly pid: number;
  readonly tokens: readonly string[];
  readonly body: string;
  readonly concurrency: number;
  /** Measure at least this long, and at least until every user was checked once. */
  readonly seconds: number;
  /**
   * Before measuring: one pass over every user (fills caches and rate-limit buckets), lasting
   * at least `warmSeconds` (JIT warm-up). Absent: measure straight away.
   */
  readonly warmSeconds?: number;
}

/** Keeps `concurrency` calls in flight, cycling through the tokens, until `stop(sent)`. */
async function drive(
  opts: CheckRunOptions,
  stop: (sent: number) => boolean,
  record?: (ms: number, res?: CheckResponse) => void,
): Promise<void> {
  let sent = 0;
  const worker = async (): Promise<void> => {
    while (!stop(sent)) {
      const token = opts.tokens[sent % opts.tokens.length] ?? '';
      sent += 1;
      const started = performance.now();
      try {
        const res = await opts.client.check(checkRequest(token, opts.body));
        record?.(performance.now() - started, res);
      } catch {
        record?.(performance.now() - started);
      }
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
}

export async function runChecks(opts: CheckRunOptions): Promise<CheckRunResult> {
  if (opts.warmSeconds !== undefined) {
    const until = performance.now() + opts.warmSeconds * 1000;
    await drive(opts, (sent) => sent >= opts.tokens.length && performance.now() >= until);
  }
  const latencies: number[] = [];
  let allowed = 0;
  let denied = 0;
  let failed = 0;
  const cpuBefore = cpuSeconds(opts.pid);
  const started = performance.now();
  const deadline = started + opts.seconds * 1000;
  await drive(
    opts,
    (sent) => sent >= opts.tokens.length && performance.now() >= deadline,
    (ms, res) => {
      latencies.push(ms);
      if (res === undefined) failed += 1;
      else if (res.status.code === 0) allowed += 1;
      else denied += 1;
    },
  );
  const elapsed = (performance.now() - started) / 1000;
  const cpu = cpuSeconds(opts.pid) - cpuBefore;
  const mem = memoryMiB(opts.pid);
  const stats = percentiles(latencies);
  return {
    ...stats,
    users: opts.tokens.length,
    checksPerSecond: stats.count / elapsed,
    allowed,
    denied,
    failed,
    cpuUs: (cpu / Math.max(1, stats.count)) * 1e6,
    rssMiB: mem.rss,
    peakMiB: mem.peak,
  };
}
