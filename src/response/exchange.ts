/**
 * The ext_proc side of metering, one MeteringExchange per HTTP request. It picks up what
 * ext_authz admitted (the `admission` id in the forwarded dynamic metadata), makes streaming
 * chat/completions requests report usage, meters the response and settles the admission with
 * the ledger exactly once: real usage, an estimate when the response was cut short, or a
 * release when there is nothing to charge (upstream error, an endpoint that uses no tokens).
 *
 * Processing modes, chosen for the least added latency (docs/metering.md): the base mode sends
 * headers only; bodies are asked for per request, and only when needed:
 * - request body BUFFERED only when `include_usage` must be injected or the admission's output
 *   limit written (budgets/fit.ts). The limit is what keeps a request within the
 *   tokens its budgets reserved, so writing it fails closed: a body that cannot carry it is
 *   answered with a 500 from here and never reaches the upstream;
 * - response body STREAMED for SSE (each chunk waits for our answer; that is the cost of being
 *   able to remove the injected usage chunk), BUFFERED for a JSON body of known, small size
 *   (one message), STREAMED for a larger or unsized JSON body (Envoy answers 500 when a body
 *   outgrows its buffer in BUFFERED mode);
 * - nothing at all for non-2xx responses and for endpoints that use no tokens.
 */
import type {
  BodyAction,
  ExchangeProcessor,
  HeaderAction,
  ImmediateReply,
} from '../edge/extproc-adapter.js';
import { DEFAULT_PROCESSING_MODE } from '../edge/processing-mode.js';
import type { BodySendMode, ProcessingModeSpec } from '../edge/processing-mode.js';
import { BodyDecoder, decoderKind } from '../metering/decode.js';
import { endpointForPath, type Endpoint } from '../request/endpoint.js';
import { estimatePrompt } from '../metering/estimate.js';
import { promptTokens, ResponseMeter } from '../metering/meter.js';
import { hasOutputLimit, injectsUsage, rewriteRequest } from '../metering/request-rewrite.js';
import { deny } from '../domain/denials.js';
import { envelope } from '../edge/envelope.js';
import type { Usage } from '../metering/usage.js';
import type { Identity } from '../domain/identity.js';
import type { Handoff } from '../handoff/handoff.js';
import { isModelList, ModelListRewriter } from './models.js';

/**
 * The mode configured in Envoy and given to the gRPC server as the base for overrides:
 * request and response headers SEND, no bodies, trailers SKIP. Both must be the same value.
 */
export const BASE_PROCESSING_MODE: ProcessingModeSpec = DEFAULT_PROCESSING_MODE;

/**
 * Largest JSON response (by content-length) asked for in BUFFERED mode. Envoy buffers it
 * under its per-stream buffer limit (1 MiB by default) and answers 500 beyond; half of that
 * leaves room for headers and other filters. Larger or unsized bodies are STREAMED.
 */
export const MAX_BUFFERED_RESPONSE_BYTES = 512 * 1024;

/** How the exchange ended, for the ledger's audit line. */
export interface SettleInfo {
  /** The upstream's HTTP status; 0 when no response headers were seen (the client left first). */
  readonly status: number;
  /** From the admission (ext_authz Check) to the end of the response. */
  readonly latencyMs: number;
  /** The response did not run to its end (client abort, upstream reset). */
  readonly aborted: boolean;
}

/**
 * Why an admission is released without a charge: the upstream answered with a non-2xx status
 * (`upstream_status_503`), or the endpoint uses no tokens (`/v1/models`, `/v1/files`, …).
 */
export type ReleaseReason = `upstream_status_${number}` | 'not_metered' | 'not_forwarded';

/** What the exchange needs from the budget ledger. Implementations must never throw. */
export interface UsageLedger {
  settle(handoff: Handoff, usage: Usage, info: SettleInfo): void | Promise<void>;
  release(handoff: Handoff, reason: ReleaseReason): void | Promise<void>;
}

/** The authorization rules, for per-caller model lists (AuthorizeStage). */
export interface ModelPolicy {
  allowedModels(identity: Identity, candidates: readonly string[]): string[];
}

export interface ExchangeDeps {
  readonly handoffs: { take(id: string): Handoff | undefined };
  readonly ledger: UsageLedger;
  /** The current rules; undefined (or absent) leaves `/v1/models` unfiltered. */
  readonly modelPolicy?: () => ModelPolicy | undefined;
  readonly now?: () => number;
  /** Told about failures; the exchange itself carries on unmetered rather than fail the request. */
  readonly onError?: (err: unknown) => void;
}

/** The dynamic-metadata key (in the ext_authz namespace) that carries the admission id. */
export const HANDOFF_KEY = 'admission';

export class MeteringExchange implements ExchangeProcessor {
  private readonly deps: ExchangeDeps;
  private handoff: Handoff | undefined;
  private endpoint: Endpoint = 'other';
  /** The request body was asked for, to inject `include_usage` and/or write `outputLimit`. */
  private rewriting = false;
  /** The output limit per generation to write; the request must not go upstream without it. */
  private outputLimit: number | undefined;
  /** False only when the usage chunk is ours and must be removed from the stream. */
  private clientWantsUsage = true;
  /** Set for a `GET …/models` whose list is filtered in the response body. */
  private policy: ModelPolicy | undefined;
  private list: ModelListRewriter | undefined;
  private listMode: BodySendMode = 'none';
  private meter: ResponseMeter | undefined;
  /** Decodes a compressed stream we must edit; the client then gets it identity-encoded. */
  private decoder: BodyDecoder | undefined;
  private decoded: Buffer[] = [];
  private status = 0;
  /** Settled or released: nothing more goes to the ledger. */
  private closed = false;

  constructor(deps: ExchangeDeps) {
    this.deps = deps;
  }

  requestHeaders(
    _headers: Record<string, string>,
    metadata: Record<string, unknown>,
    endOfStream: boolean,
  ): HeaderAction | void {
    try {
      const id = metadata[HANDOFF_KEY];
      if (typeof id !== 'string' || id === '') return; // not admitted by us: pass through
      const handoff = this.deps.handoffs.take(id);
      if (!handoff) return;
      this.handoff = handoff;
      this.endpoint = endpointForPath(handoff.path);
      if (isModelList(handoff.method, handoff.path)) this.policy = this.deps.modelPolicy?.();
      // A request without a body asks the model for nothing: there is nothing to bound.
      if (endOfStream) return;
      if (handoff.outputLimit !== undefined && hasOutputLimit(handoff.path))
        this.outputLimit = handoff.outputLimit;
      // Decided on the parsed body; the edits are made on the bytes Envoy sends next.
      const inject =
        (this.endpoint === 'chat' || this.endpoint === 'completions') &&
        injectsUsage(handoff.path, handoff.body);
      if (!inject && this.outputLimit === undefined) return;
      this.rewriting = true;
      if (inject) this.clientWantsUsage = false;
      return { modeOverride: { requestBody: 'buffered' } };
    } catch (err) {
      this.report(err);
      // Whatever failed, a request that must carry a limit does not go on without one.
      const a = this.handoff;
      if (a?.outputLimit !== undefined && hasOutputLimit(a.path) && !endOfStream)
        return { immediate: this.refuseUnbounded() };
    }
  }

  requestBody(chunk: Buffer, endOfStream: boolean): BodyAction | void {
    const handoff = this.handoff;
    if (!this.rewriting || !handoff) return;
    this.rewriting = false;
    const limit = this.outputLimit;
    try {
      // BUFFERED sends the whole body at once; a partial one cannot be edited safely. Without
      // the injection the upstream then sends no usage chunk, so there is nothing to remove;
      // without the limit the request would be unbounded, so it goes no further.
      if (!endOfStream) {
        if (limit !== undefined) return { immediate: this.refuseUnbounded() };
        return;
      }
      // Splice into the bytes Envoy really holds, so every other byte stays the client's.
      const body = isObject(handoff.body) ? handoff.body : parseObject(chunk);
      const rewrite = rewriteRequest(
        handoff.path,
        body,
        chunk,
        limit !== undefined ? { outputLimit: limit } : {},
      );
      if (rewrite.body === undefined) return;
      return { body: rewrite.body, setHeaders: { 'content-length': String(rewrite.body.length) } };
    } catch (err) {
      this.report(err);
      if (limit !== undefined) return { immediate: this.refuseUnbounded() };
    }
  }

  async responseHeaders(
    headers: Record<string, string>,
    endOfStream: boolean,
  ): Promise<HeaderAction | void> {
    const handoff = this.handoff;
    if (!handoff || this.closed) return;
    try {
      const status = Number(headers[':status']);
      this.status = Number.isInteger(status) ? status : 0;
      // An upstream error is charged nothing and frees its reservation.
      if (this.status < 200 || this.status >= 300) {
        return await this.release(`upstream_status_${this.status}`);
      }
      if (this.endpoint === 'other') {
        await this.release('not_metered');
        const policy = this.policy;
        if (policy === undefined || endOfStream) return;
        this.list = new ModelListRewriter(headers['content-encoding'], (ids) =>
          policy.allowedModels(handoff.identity, ids),
        );
        // The size rule of metered JSON: a list Envoy could not buffer is held back by us.
        this.listMode = responseBodyMode(false, headers['content-length']);
        return {
          modeOverride: { responseBody: this.listMode },
          // Only a BUFFERED answer can set content-length later; streamed, the list goes without.
          ...(this.listMode === 'streamed' ? { removeHeaders: ['content-length'] } : {}),
        };
      }
      const contentEncoding = headers['content-encoding'];
      const sse = (headers['content-type'] ?? '').toLowerCase().startsWith('text/event-stream');
      // Only plain bytes can be edited: a compressed stream whose usage chunk must go is
      // decoded here and reaches the client identity-encoded (every client accepts that).
      const kind = decoderKind(contentEncoding);
      const decode = sse && !this.clientWantsUsage && kind !== 'identity' && kind !== 'unsupported';
      if (decode) this.decoder = new BodyDecoder(kind, (bytes) => this.decoded.push(bytes));
      const encoding = decode ? undefined : contentEncoding;
      this.meter = new ResponseMeter({
        endpoint: this.endpoint,
        model: handoff.model ?? '',
        stream: sse,
        clientWantsUsage: this.clientWantsUsage,
        promptEstimate: handoff.promptEstimate,
        countPrompt: () => countPrompt(handoff),
        ...(encoding !== undefined ? { contentEncoding: encoding } : {}),
      });
      if (endOfStream) return;
      return {
        modeOverride: { responseBody: responseBodyMode(sse, headers['content-length']) },
        ...(decode ? { removeHeaders: ['content-encoding', 'content-length'] } : {}),
      };
    } catch (err) {
      this.report(err);
    }
  }

  async responseBody(chunk: Buffer, endOfStream: boolean): Promise<BodyAction | void> {
    try {
      if (this.list) return this.rewriteList(this.list, chunk, endOfStream);
      if (!this.meter) return;
      if (this.decoder) return { body: await this.decodeAndMeter(chunk, endOfStream) };
      const forward = await this.meter.push(chunk, endOfStream);
      return forward === undefined ? undefined : { body: forward };
    } catch (err) {
      this.report(err);
    }
  }

  async end(outcome: 'complete' | 'aborted'): Promise<void> {
    const handoff = this.handoff;
    if (!handoff || this.closed) return;
    try {
      if (this.endpoint === 'other') return await this.release('not_metered');
      this.closed = true;
      this.decoder?.destroy();
      // No response yet (the client left first): the prompt was sent, so charge it (counted).
      const usage = this.meter ? this.meter.finish(outcome) : promptOnly(handoff);
      const now = (this.deps.now ?? Date.now)();
      await this.deps.ledger.settle(handoff, usage, {
        status: this.status,
        latencyMs: Math.max(0, now - handoff.admittedAt),
        aborted: outcome === 'aborted',
      });
    } catch (err) {
      this.report(err);
    }
  }

  /** Plain bytes to forward for one compressed chunk (held while the decoder waits for more). */
  private async decodeAndMeter(chunk: Buffer, endOfStream: boolean): Promise<Buffer> {
    const decoder = this.decoder as BodyDecoder;
    await decoder.write(chunk);
    if (endOfStream) await decoder.end();
    // A corrupt stream stops decoding; the client gets what could be read, like the meter.
    const plain = Buffer.concat(this.decoded.splice(0));
    const forward = await (this.meter as ResponseMeter).push(plain, endOfStream);
    return forward ?? plain;
  }

  private rewriteList(
    list: ModelListRewriter,
    chunk: Buffer,
    endOfStream: boolean,
  ): BodyAction | void {
    const body = list.push(chunk, endOfStream);
    if (body === undefined) return;
    if (this.listMode !== 'buffered') return { body };
    return { body, setHeaders: { 'content-length': String(body.length) } };
  }

  /**
   * Fail closed: the request must carry an output limit and cannot, so it is answered here
   * (500 internal_error, the OpenAI envelope) instead of reaching the upstream unbounded, and
   * its reservation is released.
   */
  private refuseUnbounded(): ImmediateReply {
    const handoff = this.handoff;
    if (handoff !== undefined && !this.closed) {
      this.closed = true;
      // Never throws (UsageLedger); caught anyway so a broken ledger cannot stop the answer.
      Promise.resolve(this.deps.ledger.release(handoff, 'not_forwarded')).catch((err: unknown) =>
        this.report(err),
      );
    }
    const denial = deny(
      'internal_error',
      'Tollgate could not limit the output of this request to its token budget, so it was not sent.',
    );
    return {
      status: denial.status,
      headers: { 'content-type': 'application/json', 'x-tollgate-reason': denial.reason },
      body: Buffer.from(envelope(denial), 'utf8'),
      details: 'tollgate_output_limit_not_written',
    };
  }

  private async release(reason: ReleaseReason): Promise<void> {
    const handoff = this.handoff;
    if (!handoff || this.closed) return;
    this.closed = true;
    await this.deps.ledger.release(handoff, reason);
  }

  private report(err: unknown): void {
    try {
      this.deps.onError?.(err);
    } catch {
      // a failing reporter must not break the exchange
    }
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The JSON object in `bytes`, or undefined (then a limit cannot be written). */
function parseObject(bytes: Buffer): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(bytes.toString('utf8'));
    return isObject(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** STREAMED for SSE; BUFFERED for a JSON body known to fit Envoy's buffer; else STREAMED. */
export function responseBodyMode(sse: boolean, contentLength: string | undefined): BodySendMode {
  if (sse) return 'streamed';
  const length =
    contentLength !== undefined && /^\d+$/.test(contentLength) ? Number(contentLength) : NaN;
  return length <= MAX_BUFFERED_RESPONSE_BYTES ? 'buffered' : 'streamed';
}

/**
 * The prompt of an admission counted with its model's tokenizer, for a charge without usage
 * (the admission's own estimate is a quick one, made only to size the reservation).
 */
function countPrompt(handoff: Handoff): number {
  if (handoff.body === undefined) return handoff.promptEstimate;
  return estimatePrompt(handoff.path, handoff.body, handoff.model ?? '');
}

function promptOnly(handoff: Handoff): Usage {
  const input = promptTokens({
    promptEstimate: handoff.promptEstimate,
    countPrompt: () => countPrompt(handoff),
  });
  return { inputTokens: input, outputTokens: 0, totalTokens: input, source: 'estimated' };
}

/** A fresh exchange per ext_proc stream (GrpcServerOptions.newExchange). */
export function exchangeFactory(deps: ExchangeDeps): () => ExchangeProcessor {
  return () => new MeteringExchange(deps);
}
