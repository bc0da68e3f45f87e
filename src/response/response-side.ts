/**
 * Phases `response headers` and `response body`: an upstream error is charged nothing; an
 * endpoint that uses no tokens frees its reservation (and a model list is cut down to the
 * caller's models); a metered response is fed to the meter, which reads usage and removes
 * the usage chunk that the request side injected. Bodies are asked for only when needed:
 * STREAMED for SSE (each chunk waits for our answer: the cost of removing the injected chunk),
 * BUFFERED for a JSON body of known, small size, STREAMED for a larger or unsized one (Envoy
 * answers 500 when a body outgrows its buffer in BUFFERED mode); nothing for non-2xx.
 */
import { BodyDecoder, decoderKind } from '../metering/decode.js';
import { estimatePrompt } from '../metering/estimate.js';
import { ResponseMeter } from '../metering/meter.js';
import type { BodySendMode } from './mode.js';
import { ModelListRewriter } from './models.js';
import type { BodyAction, HeaderAction } from './phases.js';
import { pickUp } from './request-side.js';
import type { ExchangeState } from './state.js';

/**
 * Largest JSON response (by content-length) asked for in BUFFERED mode. Envoy buffers it
 * under its per-stream buffer limit (1 MiB by default) and answers 500 beyond; half of that
 * leaves room for headers and other filters. Larger or unsized bodies are STREAMED.
 */
export const MAX_BUFFERED_RESPONSE_BYTES = 512 * 1024;

/** The longest provider request id kept for the usage line. */
const MAX_PROVIDER_ID = 128;

export async function responseHeaders(
  x: ExchangeState,
  headers: Record<string, string>,
  endOfStream: boolean,
  metadata: Record<string, unknown>,
): Promise<HeaderAction | void> {
  // A stream's filter may send nothing before the response (handoff/stream-profile.ts).
  pickUp(x, metadata, false);
  const handoff = x.handoff;
  if (!handoff || x.closed) return;
  try {
    const status = Number(headers[':status']);
    x.status = Number.isInteger(status) ? status : 0;
    const providerId = headers['x-request-id'];
    if (providerId !== undefined && /^[\x21-\x7e]+$/.test(providerId)) x.providerRequestId = providerId.slice(0, MAX_PROVIDER_ID);
    // An upstream error is charged nothing and frees its reservation.
    if (x.status < 200 || x.status >= 300) return await x.release(`upstream_status_${x.status}`);
    if (x.endpoint === 'other') {
      await x.release('not_metered');
      const policy = x.policy;
      if (policy === undefined || endOfStream) return;
      x.list = new ModelListRewriter(headers['content-encoding'], (ids) => policy.allowedModels(handoff.identity, ids));
      // The size rule of metered JSON: a list Envoy could not buffer is held back by us.
      x.listMode = responseBodyMode(false, headers['content-length']);
      return {
        modeOverride: { responseBody: x.listMode },
        // Only a BUFFERED answer can set content-length later; streamed, the list goes without.
        ...(x.listMode === 'streamed' ? { removeHeaders: ['content-length'] } : {}),
      };
    }
    const contentEncoding = headers['content-encoding'];
    const sse = (headers['content-type'] ?? '').toLowerCase().startsWith('text/event-stream');
    // Only plain bytes can be edited: a compressed stream whose usage chunk must go is
    // decoded here and reaches the client identity-encoded (every client accepts that).
    const kind = decoderKind(contentEncoding);
    const decode = sse && !x.clientWantsUsage && kind !== 'identity' && kind !== 'unsupported';
    if (decode) x.decoder = new BodyDecoder(kind, (bytes) => x.decoded.push(bytes));
    const encoding = decode ? undefined : contentEncoding;
    x.meter = new ResponseMeter({
      endpoint: x.endpoint,
      model: handoff.model ?? '',
      stream: sse,
      clientWantsUsage: x.clientWantsUsage,
      promptEstimate: handoff.promptEstimate,
      countPrompt: () => countPrompt(x),
      ...(handoff.backgroundOutput !== undefined ? { backgroundOutput: handoff.backgroundOutput } : {}),
      ...(encoding !== undefined ? { contentEncoding: encoding } : {}),
    });
    if (endOfStream) return;
    return {
      modeOverride: { responseBody: responseBodyMode(sse, headers['content-length']) },
      ...(decode ? { removeHeaders: ['content-encoding', 'content-length'] } : {}),
    };
  } catch (err) {
    x.report(err);
  }
}

export async function responseBody(x: ExchangeState, chunk: Buffer, endOfStream: boolean): Promise<BodyAction | void> {
  try {
    if (x.list) return rewriteList(x, x.list, chunk, endOfStream);
    const meter = x.meter;
    if (!meter) return;
    if (x.decoder) return { body: await decodeAndMeter(x, x.decoder, meter, chunk, endOfStream) };
    const forward = await meter.push(chunk, endOfStream);
    return forward === undefined ? undefined : { body: forward };
  } catch (err) {
    x.report(err);
  }
}

/** STREAMED for SSE; BUFFERED for a JSON body known to fit Envoy's buffer; else STREAMED. */
export function responseBodyMode(sse: boolean, contentLength: string | undefined): BodySendMode {
  if (sse) return 'streamed';
  const length = contentLength !== undefined && /^\d+$/.test(contentLength) ? Number(contentLength) : NaN;
  return length <= MAX_BUFFERED_RESPONSE_BYTES ? 'buffered' : 'streamed';
}

/**
 * The prompt of a response that ended without usage, counted with its model's tokenizer when
 * this stream saw the request body (it asks for it only when it edits it: a streaming request
 * without include_usage, or one whose output limit is written); otherwise the Check's quick
 * estimate, which errs high. Either is charged as `estimated`.
 */
export function countPrompt(x: ExchangeState): number {
  const handoff = x.handoff;
  if (handoff === undefined) return 0;
  const body = parsed(x.requestBody);
  if (body === undefined) return handoff.promptEstimate;
  return estimatePrompt(handoff.path, body, handoff.model ?? '');
}

/** The JSON object in `bytes`, parsed only now that a prompt must be counted; else undefined. */
function parsed(bytes: Buffer | undefined): Record<string, unknown> | undefined {
  if (bytes === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(bytes.toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Plain bytes to forward for one compressed chunk (held while the decoder waits for more). */
async function decodeAndMeter(
  x: ExchangeState,
  decoder: BodyDecoder,
  meter: ResponseMeter,
  chunk: Buffer,
  endOfStream: boolean,
): Promise<Buffer> {
  await decoder.write(chunk);
  if (endOfStream) await decoder.end();
  // A corrupt stream stops decoding; the client gets what could be read, like the meter.
  const plain = Buffer.concat(x.decoded.splice(0));
  const forward = await meter.push(plain, endOfStream);
  return forward ?? plain;
}

function rewriteList(x: ExchangeState, list: ModelListRewriter, chunk: Buffer, endOfStream: boolean): BodyAction | void {
  const body = list.push(chunk, endOfStream);
  if (body === undefined) return;
  if (x.listMode !== 'buffered') return { body };
  return { body, setHeaders: { 'content-length': String(body.length) } };
}
