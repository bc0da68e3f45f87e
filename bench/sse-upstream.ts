/**
 * A streaming OpenAI upstream for benchmark (e). Every chunk carries `x_sent_ns`, the
 * system-wide monotonic clock (CLOCK_MONOTONIC, the same in every process on this machine)
 * when it was written, so the client can tell how long each chunk spent in transit through
 * Envoy and Tollgate. Honours `stream_options.include_usage` like OpenAI does.
 *
 *   node --import tsx bench/sse-upstream.ts --chunks N --delay-ms D
 * prints {"event":"ready","url":"http://127.0.0.1:PORT"} on stdout.
 */
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { CHAT_COMPLETION } from './lib/bootstraps.js';

const { values } = parseArgs({
  options: { chunks: { type: 'string' }, 'delay-ms': { type: 'string' } },
  strict: true,
});
const chunks = Number(values.chunks ?? 20);
const delayMs = Number(values['delay-ms'] ?? 10);

function chunk(index: number, delta: Record<string, unknown>, finish: string | null): string {
  return JSON.stringify({
    id: 'chatcmpl-bench',
    object: 'chat.completion.chunk',
    created: 1700000000,
    model: 'gpt-4o-mini',
    choices: [{ index: 0, delta, finish_reason: finish }],
    x_index: index,
    x_sent_ns: process.hrtime.bigint().toString(),
  });
}

function stream(res: ServerResponse, includeUsage: boolean): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  let i = 0;
  const next = (): void => {
    if (res.destroyed) return;
    const last = i === chunks - 1;
    res.write(
      `data: ${chunk(i, i === 0 ? { role: 'assistant', content: 'tok ' } : { content: 'tok ' }, last ? 'stop' : null)}\n\n`,
    );
    i += 1;
    if (!last) {
      setTimeout(next, delayMs);
      return;
    }
    if (includeUsage) {
      const usage = { prompt_tokens: 9, completion_tokens: chunks, total_tokens: 9 + chunks };
      res.write(
        `data: ${JSON.stringify({ id: 'chatcmpl-bench', object: 'chat.completion.chunk', created: 1700000000, model: 'gpt-4o-mini', choices: [], usage })}\n\n`,
      );
    }
    res.end('data: [DONE]\n\n');
  };
  next();
}

const server = createServer((req, res) => {
  const parts: Buffer[] = [];
  req.on('data', (d: Buffer) => parts.push(d));
  req.on('end', () => {
    let body: { stream?: unknown; stream_options?: { include_usage?: unknown } } = {};
    try {
      body = JSON.parse(Buffer.concat(parts).toString('utf8')) as typeof body;
    } catch {
      // not JSON: answered as a plain completion below
    }
    if (body.stream === true) return stream(res, body.stream_options?.include_usage === true);
    const text = JSON.stringify(CHAT_COMPLETION);
    res.writeHead(200, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
    });
    res.end(text);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  process.stdout.write(`${JSON.stringify({ event: 'ready', url: `http://127.0.0.1:${port}` })}\n`);
});
process.once('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
