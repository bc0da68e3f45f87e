/**
 * `GET /v1/models` per caller: the upstream's list, cut down to the models the caller's
 * authorization rules allow. Kept apart from the processor so it can be tested on plain bytes.
 */
import { decodeWhole, decoderKind, encodeWhole } from '../metering/decode.js';

/** A model list is small (OpenAI's is ~20 KB); past this it is let through unfiltered. */
export const MAX_MODEL_LIST_BYTES = 4 * 1024 * 1024;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The filtered list, encoded like the upstream's body, or undefined to leave the response as
 * it is (not a `{data: [...]}` list, unreadable, or nothing to remove). `allowed` gets every
 * model id in the list and returns those the caller may use. Entries without a string `id`
 * are dropped: no rule can allow what cannot be named.
 */
export function filterModelList(
  body: Buffer,
  contentEncoding: string | undefined,
  allowed: (ids: readonly string[]) => readonly string[],
): Buffer | undefined {
  const kind = decoderKind(contentEncoding);
  if (kind === 'unsupported' || body.length > MAX_MODEL_LIST_BYTES) return undefined;
  const plain = decodeWhole(body, kind, MAX_MODEL_LIST_BYTES);
  if (plain === undefined) return undefined;
  let list: unknown;
  try {
    list = JSON.parse(plain.toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
  if (!isObject(list) || !Array.isArray(list['data'])) return undefined;
  const entries: unknown[] = list['data'];
  const ids = entries.flatMap((e) => (isObject(e) && typeof e['id'] === 'string' ? [e['id']] : []));
  const keep = new Set(allowed(ids));
  const data = entries.filter(
    (e) => isObject(e) && typeof e['id'] === 'string' && keep.has(e['id']),
  );
  // Nothing removed: forward the upstream's bytes untouched.
  if (data.length === entries.length) return undefined;
  return encodeWhole(Buffer.from(JSON.stringify({ ...list, data }), 'utf8'), kind);
}

/**
 * Rewrites a list response fed chunk by chunk. In BUFFERED mode it arrives as one message; in
 * STREAMED mode (a list too large or unsized for Envoy's buffer) the chunks are held back and
 * the whole list goes out with the last one. Past MAX_MODEL_LIST_BYTES it gives up and lets
 * everything through unchanged: the list is a convenience, ext_authz still guards every call.
 */
export class ModelListRewriter {
  private readonly contentEncoding: string | undefined;
  private readonly allowed: (ids: readonly string[]) => readonly string[];
  private held: Buffer[] = [];
  private bytes = 0;
  private done = false;

  constructor(
    contentEncoding: string | undefined,
    allowed: (ids: readonly string[]) => readonly string[],
  ) {
    this.contentEncoding = contentEncoding;
    this.allowed = allowed;
  }

  /** Bytes to forward in place of `chunk` (empty = hold), or undefined for `chunk` unchanged. */
  push(chunk: Buffer, endOfStream: boolean): Buffer | undefined {
    if (this.done) return undefined;
    const tooLarge = this.bytes + chunk.length > MAX_MODEL_LIST_BYTES;
    if (!endOfStream && !tooLarge) {
      this.held.push(chunk);
      this.bytes += chunk.length;
      return Buffer.alloc(0);
    }
    this.done = true;
    const whole = this.held.length > 0 ? Buffer.concat([...this.held, chunk]) : chunk;
    this.held = [];
    const filtered = tooLarge
      ? undefined
      : filterModelList(whole, this.contentEncoding, this.allowed);
    if (filtered !== undefined) return filtered;
    return whole === chunk ? undefined : whole;
  }
}
