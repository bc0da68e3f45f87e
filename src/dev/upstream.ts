/**
 * A local OpenAI-compatible upstream for `tollgate demo` and the tests. It answers chat
 * completions and legacy completions (JSON and SSE, with usage when asked), the Responses API
 * (JSON and SSE events, usage in `response.completed`; `background: true` without `stream` is
 * answered `queued`, without usage), embeddings and the model list, and records every request it received so tests can check
 * what really reached the upstream. With `tls` it serves HTTPS and records every handshake (SNI,
 * ALPN, or why it failed), so TLS tests can prove what a client sent and what it refused.
 *
 * Test controls travel as request headers (the SDK's per-request `headers` option):
 * `x-dev-prompt-tokens` / `x-dev-completion-tokens` fix the reported usage (completion tokens
 * per choice, default 12, never more than the request's own `max_completion_tokens` /
 * `max_tokens` / `max_output_tokens`, times `n`, or `max(n, best_of)` for completions, as a
 * real model bills), `x-dev-chunks`
 * sets the number of content chunks, `x-dev-chunk-delay-ms` slows a stream, `x-dev-headers-delay-ms` holds the response headers back (a slow first
 * token; nothing is answered when the client is gone by then), `x-dev-status`
 * answers with that error status, `x-dev-gzip: 1` gzips the body, `x-dev-reset-after-chunks: N`
 * cuts a stream's connection after N content chunks (an upstream reset mid-stream),
 * `x-dev-cached-tokens` / `x-dev-reasoning-tokens` report that many of the prompt tokens as
 * cached and of the completion tokens as reasoning (chat and Responses usage details).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { gzipSync, createGzip } from 'node:zlib';

/** Serve HTTPS: the certificate chain and key (PEM), and the ALPN protocols offered. */
export interface DevUpstreamTls {
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
  /** Protocols the server accepts by ALPN, most preferred first; default none. */
  readonly alpn?: readonly string[];
}

/** One TLS handshake with an HTTPS upstream, as the server saw it. */
export interface Handshake {
  /** The SNI the client sent, or false when it sent none. */
  readonly servername: string | false;
  /** The protocol agreed by ALPN, or false when none was. */
  readonly alpnProtocol: string | false;
  /** Why the handshake failed (e.g. the client's alert), absent when it succeeded. */
  readonly error?: string;
}

export interface ReceivedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  /** The request target exactly as received, query string included. */
  readonly url: string;
  /** The body's bytes exactly as received. */
  readonly rawBody: Buffer;
}

/** Usage the upstream reported in a response (JSON body or a stream's usage chunk). */
export interface ReportedUsage {
  readonly path: string;
  readonly promptTokens: number;
  readonly completionTokens: number;
  readonly totalTokens: number;
  readonly cachedTokens: number;
  readonly reasoningTokens: number;
}

export const DEV_MODELS = ['gpt-4o', 'gpt-4o-mini', 'gpt-4.1', 'o3-mini', 'text-embedding-3-small'];

const WORDS = 'Hello from the Tollgate development upstream . Every token here is counted .'.split(' ');

interface Controls {
  readonly promptTokens: number;
  readonly completionTokens: number;
  /** Of the prompt tokens, those reported as served from the cache. */
  readonly cachedTokens: number;
  /** Of the completion tokens, those reported as reasoning. */
  readonly reasoningTokens: number;
  readonly chunks: number;
  readonly delayMs: number;
  /** Milliseconds before the response headers (a slow first token). */
  readonly headersDelayMs: number;
  readonly status?: number;
  readonly gzip: boolean;
  readonly resetAfterChunks?: number;
}

function num(value: string | undefined, fallback: number): number {
  const n = value === undefined ? NaN : Number(value);
  return Number.isFinite(n) && n >= 0 ? n : fallback;
}

/** A whole, non-negative number from the body, or undefined. */
function count(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 ? value : undefined;
}

/**
 * Output tokens of the whole request: per choice the control (default 12) but never more
 * than the request's output limit, for every choice (`n`) or candidate (`best_of`).
 */
function completionTokensOf(headers: Record<string, string>, body: Record<string, unknown>, path: string): number {
  const limit = count(body['max_completion_tokens']) ?? count(body['max_tokens']) ?? count(body['max_output_tokens']);
  const perChoice = Math.min(num(headers['x-dev-completion-tokens'], 12), limit ?? Infinity);
  const n = count(body['n']) || 1;
  const choices = path === '/v1/completions' ? Math.max(n, count(body['best_of']) || 1) : path === '/v1/responses' ? 1 : n;
  return perChoice * choices;
}

function controls(headers: Record<string, string>, body: Record<string, unknown>, path: string): Controls {
  const messages = Array.isArray(body['messages']) ? body['messages'].length : 1;
  const status = num(headers['x-dev-status'], 0);
  const promptTokens = num(headers['x-dev-prompt-tokens'], 8 + 5 * messages);
  const completionTokens = completionTokensOf(headers, body, path);
  return {
    promptTokens,
    completionTokens,
    cachedTokens: Math.min(num(headers['x-dev-cached-tokens'], 0), promptTokens),
    reasoningTokens: Math.min(num(headers['x-dev-reasoning-tokens'], 0), completionTokens),
    chunks: Math.max(1, num(headers['x-dev-chunks'], 4)),
    delayMs: num(headers['x-dev-chunk-delay-ms'], 0),
    headersDelayMs: num(headers['x-dev-headers-delay-ms'], 0),
    ...(status >= 400 ? { status } : {}),
    gzip: headers['x-dev-gzip'] === '1',
    ...(headers['x-dev-reset-after-chunks'] !== undefined
      ? { resetAfterChunks: num(headers['x-dev-reset-after-chunks'], 0) }
      : {}),
  };
}

function flatHeaders(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) {
    if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}

function contentFor(chunks: number): string[] {
  return Array.from({ length: chunks }, (_, i) => `${WORDS[i % WORDS.length]} `);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class DevUpstream {
  readonly received: ReceivedRequest[] = [];
  /** Every TLS handshake, completed or failed (HTTPS only), oldest first. */
  readonly handshakes: Handshake[] = [];
  /** Every usage reported to a caller, in order: what a correct ledger charges. */
  readonly reported: ReportedUsage[] = [];
  private readonly server: Server;
  readonly url: string;
  private constructor(server: Server, url: string) {
    this.server = server;
    this.url = url;
  }

  static async start(opts: { port?: number; host?: string; tls?: DevUpstreamTls } = {}): Promise<DevUpstream> {
    const host = opts.host ?? '127.0.0.1';
    // The handler needs the instance, which needs the bound port: wire it through a holder.
    const holder: { self?: DevUpstream } = {};
    const handler = (req: IncomingMessage, res: ServerResponse): void => {
      holder.self?.handle(req, res).catch(() => res.destroy());
    };
    const tls = opts.tls;
    const server =
      tls === undefined
        ? createServer(handler)
        : createHttpsServer({ cert: tls.cert, key: tls.key, ...(tls.alpn ? { ALPNProtocols: [...tls.alpn] } : {}) }, handler)
            .on('secureConnection', (socket: TLSSocket) =>
              holder.self?.handshakes.push({ servername: socket.servername ?? false, alpnProtocol: socket.alpnProtocol ?? false }),
            )
            .on('tlsClientError', (err: Error, socket: TLSSocket) =>
              holder.self?.handshakes.push({
                servername: socket.servername ?? false,
                alpnProtocol: socket.alpnProtocol ?? false,
                error: err.message,
              }),
            );
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? 0, host, () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    holder.self = new DevUpstream(server, `${tls === undefined ? 'http' : 'https'}://${host}:${port}`);
    return holder.self;
  }

  /** Requests received at `path`, oldest first. */
  requests(path?: string): ReceivedRequest[] {
    return path === undefined ? [...this.received] : this.received.filter((r) => r.path === path);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const rawBody = Buffer.concat(chunks);
    const raw = rawBody.toString('utf8');
    const headers = flatHeaders(req);
    const url = req.url ?? '/';
    const path = url.split('?')[0] ?? '/';
    this.received.push({ method: req.method ?? 'GET', path, headers, body: raw, url, rawBody });

    let body: Record<string, unknown> = {};
    if (raw.length > 0) {
      try {
        const parsed: unknown = JSON.parse(raw);
        if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) body = parsed as Record<string, unknown>;
      } catch {
        return this.json(res, 400, errorBody('We could not parse the JSON body of your request.'), false);
      }
    }
    const c = controls(headers, body, path);
    if (c.headersDelayMs > 0) await sleep(c.headersDelayMs);
    if (res.destroyed) return;
    if (c.status !== undefined) {
      return this.json(res, c.status, errorBody(`dev upstream was asked to fail with ${c.status}`), c.gzip);
    }
    const model = typeof body['model'] === 'string' ? body['model'] : 'gpt-4o-mini';
    if (req.method === 'GET' && path === '/v1/models') {
      return this.json(res, 200, { object: 'list', data: DEV_MODELS.map((id) => ({ id, object: 'model', created: 1700000000, owned_by: 'tollgate-dev' })) }, c.gzip);
    }
    if (req.method !== 'POST') return this.json(res, 404, errorBody(`unknown path ${path}`), false);
    const report = (completionTokens = c.completionTokens): void => {
      const { promptTokens, cachedTokens } = c;
      const reasoningTokens = Math.min(c.reasoningTokens, completionTokens);
      this.reported.push({ path, promptTokens, completionTokens, totalTokens: promptTokens + completionTokens, cachedTokens, reasoningTokens });
    };
    switch (path) {
      case '/v1/chat/completions':
        if (body['stream'] === true) return this.sseStream(res, path, body, model, c, report);
        report();
        return this.json(res, 200, chatCompletion(model, c), c.gzip);
      case '/v1/completions':
        if (body['stream'] === true) return this.sseStream(res, path, body, model, c, report);
        report();
        return this.json(res, 200, textCompletion(model, c), c.gzip);
      case '/v1/embeddings':
        report(0);
        return this.json(res, 200, embeddings(model, body, c), c.gzip);
      case '/v1/responses':
        if (body['stream'] === true) return this.sseStream(res, path, body, model, c, report);
        // A background response is queued: the model runs later and its usage is read with
        // `GET /v1/responses/{id}`, never reported in this answer.
        if (body['background'] === true) return this.json(res, 200, queuedResponse(model), c.gzip);
        report();
        return this.json(res, 200, responsesResult(model, c), c.gzip);
      default:
        return this.json(res, 404, errorBody(`unknown path ${path}`), false);
    }
  }

  private json(res: ServerResponse, status: number, payload: unknown, gzip: boolean): void {
    const text = Buffer.from(JSON.stringify(payload));
    const headers: Record<string, string> = { 'content-type': 'application/json', 'x-request-id': `dev-${Date.now()}` };
    const out = gzip ? gzipSync(text) : text;
    if (gzip) headers['content-encoding'] = 'gzip';
    headers['content-length'] = String(out.length);
    res.writeHead(status, headers);
    res.end(out);
  }

  /**
   * One SSE stream in the shape of `path`: chat and legacy completions send chunks (the usage
   * chunk only when `stream_options.include_usage` is true) and `data: [DONE]`; the Responses
   * API sends named events and its usage in the terminal `response.completed`.
   */
  private async sseStream(
    res: ServerResponse,
    path: string,
    body: Record<string, unknown>,
    model: string,
    c: Controls,
    report: () => void,
  ): Promise<void> {
    const opts = body['stream_options'];
    const includeUsage = !!opts && typeof opts === 'object' && (opts as Record<string, unknown>)['include_usage'] === true;
    const headers: Record<string, string> = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' };
    if (c.gzip) headers['content-encoding'] = 'gzip';
    res.writeHead(200, headers);
    const gz = c.gzip ? createGzip() : undefined;
    if (gz) gz.pipe(res);
    const write = async (text: string) => {
      if (res.destroyed) return;
      if (gz) {
        gz.write(text);
        await new Promise<void>((r) => gz.flush(() => r()));
      } else res.write(text);
    };
    const shape = streamShape(path, model, includeUsage);
    await write(shape.first());
    for (const [i, piece] of contentFor(c.chunks).entries()) {
      if (c.delayMs > 0) await sleep(c.delayMs);
      if (i === c.resetAfterChunks) {
        res.destroy(); // no final chunk, no usage, no [DONE]
        return;
      }
      if (res.destroyed) return;
      await write(shape.piece(piece));
    }
    await write(shape.finish());
    if (shape.reportsUsage && !res.destroyed) {
      report();
      await write(shape.usage(c));
    }
    if (shape.done) await write('data: [DONE]\n\n');
    if (gz) gz.end();
    else res.end();
  }
}

interface StreamShape {
  first(): string;
  piece(text: string): string;
  finish(): string;
  /** The stream ends with usage (the Responses API always, chat/completions when asked). */
  readonly reportsUsage: boolean;
  usage(c: Controls): string;
  /** It ends with `data: [DONE]` (chat and completions). */
  readonly done: boolean;
}

function data(value: unknown): string {
  return `data: ${JSON.stringify(value)}\n\n`;
}

function streamShape(path: string, model: string, includeUsage: boolean): StreamShape {
  const created = Math.floor(Date.now() / 1000);
  if (path === '/v1/responses') {
    const id = `resp_dev${Date.now()}`;
    let seq = 0;
    const event = (type: string, payload: Record<string, unknown>) =>
      `event: ${type}\n${data({ type, sequence_number: seq++, ...payload })}`;
    const response = (status: string, extra: Record<string, unknown> = {}) => ({ id, object: 'response', created_at: created, status, model, output: [], usage: null, ...extra });
    let text = '';
    return {
      first: () => event('response.created', { response: response('in_progress') }),
      piece: (delta) => {
        text += delta;
        return event('response.output_text.delta', { item_id: 'msg_dev', output_index: 0, content_index: 0, delta });
      },
      finish: () => event('response.output_text.done', { item_id: 'msg_dev', output_index: 0, content_index: 0, text }),
      reportsUsage: true,
      usage: (c) => {
        const { usage } = responsesResult(model, c) as { usage: unknown };
        return event('response.completed', { response: response('completed', { usage }) });
      },
      done: false,
    };
  }
  const completions = path === '/v1/completions';
  const base = completions
    ? { id: `cmpl-dev${Date.now()}`, object: 'text_completion', created, model }
    : { id: `chatcmpl-dev${Date.now()}`, object: 'chat.completion.chunk', created, model };
  const extra = includeUsage ? { usage: null } : {};
  const choice = (delta: Record<string, unknown>, text: string, finish: string | null) =>
    completions ? { index: 0, text, finish_reason: finish, logprobs: null } : { index: 0, delta, finish_reason: finish };
  return {
    first: () => data({ ...base, choices: [choice({ role: 'assistant', content: '' }, '', null)], ...extra }),
    piece: (text) => data({ ...base, choices: [choice({ content: text }, text, null)], ...extra }),
    finish: () => data({ ...base, choices: [choice({}, '', 'stop')], ...extra }),
    reportsUsage: includeUsage,
    usage: (c) =>
      data({
        ...base,
        choices: [],
        usage: completions ? { prompt_tokens: c.promptTokens, completion_tokens: c.completionTokens, total_tokens: c.promptTokens + c.completionTokens } : usageOf(c),
      }),
    done: true,
  };
}

function errorBody(message: string): unknown {
  return { error: { message, type: 'invalid_request_error', param: null, code: null } };
}

function usageOf(c: Controls) {
  return {
    prompt_tokens: c.promptTokens,
    completion_tokens: c.completionTokens,
    total_tokens: c.promptTokens + c.completionTokens,
    prompt_tokens_details: { cached_tokens: c.cachedTokens },
    completion_tokens_details: { reasoning_tokens: c.reasoningTokens },
  };
}

function chatCompletion(model: string, c: Controls): unknown {
  return {
    id: `chatcmpl-dev${Date.now()}`,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model,
    choices: [{ index: 0, message: { role: 'assistant', content: contentFor(c.chunks).join('').trim() }, finish_reason: 'stop' }],
    usage: usageOf(c),
  };
}

function textCompletion(model: string, c: Controls): unknown {
  return {
    id: `cmpl-dev${Date.now()}`,
    object: 'text_completion',
    created: Math.floor(Date.now() / 1000),
    model,
    choices: [{ index: 0, text: contentFor(c.chunks).join(''), finish_reason: 'stop', logprobs: null }],
    usage: { prompt_tokens: c.promptTokens, completion_tokens: c.completionTokens, total_tokens: c.promptTokens + c.completionTokens },
  };
}

function embeddings(model: string, body: Record<string, unknown>, c: Controls): unknown {
  const input = body['input'];
  const count = Array.isArray(input) ? input.length : 1;
  return {
    object: 'list',
    model,
    data: Array.from({ length: count }, (_, index) => ({ object: 'embedding', index, embedding: [0.1, 0.2, 0.3] })),
    usage: { prompt_tokens: c.promptTokens, total_tokens: c.promptTokens },
  };
}

function queuedResponse(model: string): unknown {
  return { id: `resp_dev${Date.now()}`, object: 'response', created_at: Math.floor(Date.now() / 1000), status: 'queued', background: true, model, output: [], usage: null };
}

function responsesResult(model: string, c: Controls): unknown {
  return {
    id: `resp_dev${Date.now()}`,
    object: 'response',
    created_at: Math.floor(Date.now() / 1000),
    status: 'completed',
    model,
    output: [{ type: 'message', id: 'msg_dev', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: contentFor(c.chunks).join('').trim(), annotations: [] }] }],
    usage: {
      input_tokens: c.promptTokens,
      input_tokens_details: { cached_tokens: c.cachedTokens },
      output_tokens: c.completionTokens,
      output_tokens_details: { reasoning_tokens: c.reasoningTokens },
      total_tokens: c.promptTokens + c.completionTokens,
    },
  };
}
