/**
 * Request-side metering, on the bytes the upstream will receive:
 * - make streaming chat/completions responses report usage (`stream_options.include_usage:
 *   true`, openai.md §5) and remember whether the client asked for it, so the meter removes
 *   the extra chunk again when it did not;
 * - write the output limit a budget admitted the request with (budgets/fit.ts), so the
 *   model cannot produce more than was reserved: chat lowers `max_completion_tokens` and/or
 *   `max_tokens` where given (adds `max_completion_tokens` when neither is), completions
 *   `max_tokens`, responses `max_output_tokens`; embeddings have no output to bound.
 * Every edit is spliced into the client's bytes, so everything else stays as it was sent.
 */
import { scanObject } from '../request/json-scan.js';
import { endpointForPath, type Endpoint } from '../request/endpoint.js';

export interface RequestRewrite {
  /** The new body, only when it changed. */
  body?: Buffer;
  /** The request asks for a streamed (SSE) response. */
  stream: boolean;
  /**
   * False only when we injected `include_usage`: the usage chunk is ours and must be
   * removed from the response. True whenever the client will get what it asked for unchanged.
   */
  clientWantsUsage: boolean;
  endpoint: Endpoint;
}

export interface RewriteOptions {
  /**
   * The most output tokens per generation (choice) the request may ask for. Limit fields
   * above it, or missing, are set to it; a smaller limit the client gave is kept.
   */
  readonly outputLimit?: number;
}

/** The body cannot carry the output limit it must (not a JSON object). */
export class RewriteError extends Error {
  override readonly name = 'RewriteError';
}

type Obj = Record<string, unknown>;

function isObject(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Whether `rewriteRequest` would change this request (a streaming chat/completions request
 * that did not ask for usage itself), without building the new body. When it would, the
 * usage chunk will be ours, so the client does not want it.
 */
export function injectsUsage(path: string, body: unknown): boolean {
  const endpoint = endpointForPath(path);
  if (!isObject(body) || body['stream'] !== true) return false;
  if (endpoint !== 'chat' && endpoint !== 'completions') return false;
  const current = body['stream_options'];
  if (isObject(current) && current['include_usage'] === true) return false;
  // A non-object value is the client's error; the upstream answers it with a 400 and no
  // tokens, so it is left alone rather than silently repaired.
  return current === undefined || current === null || isObject(current);
}

/** The fields that bound an endpoint's output per generation, in the order they are written. */
const LIMIT_FIELDS: Readonly<Record<Endpoint, readonly string[]>> = {
  chat: ['max_completion_tokens', 'max_tokens'],
  completions: ['max_tokens'],
  responses: ['max_output_tokens'],
  embeddings: [],
  other: [],
};

/** Whether an endpoint has an output limit to write (embeddings and other paths do not). */
export function hasOutputLimit(path: string): boolean {
  return LIMIT_FIELDS[endpointForPath(path)].length > 0;
}

/**
 * The limit fields to set so that no generation may exceed `limit`. Chat: each of
 * `max_completion_tokens` / `max_tokens` the client gave (providers differ in which one wins),
 * lowered where above the limit; when neither is given, `max_completion_tokens` (the one every
 * chat model accepts; o-series models refuse `max_tokens`). `null` counts as not given.
 */
function limitEdits(endpoint: Endpoint, body: Obj, limit: number): [string, number][] {
  const fields = LIMIT_FIELDS[endpoint];
  const given = fields.filter((k) => body[k] !== undefined && body[k] !== null);
  const targets = given.length > 0 ? given : fields.slice(0, 1);
  return targets.filter((k) => !within(body[k], limit)).map((k) => [k, limit]);
}

function within(value: unknown, limit: number): boolean {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 && value <= limit;
}

/**
 * `body` is the parsed request JSON. Pass the original bytes as `raw` when available: the
 * edits are then spliced into them, leaving every other byte as the client sent it (a
 * parse/stringify round trip would silently change numbers beyond 2^53, e.g. a `seed`).
 * With `outputLimit`, throws RewriteError when the body is not a JSON object (it cannot
 * carry the limit, so the caller must not forward it unbounded).
 */
export function rewriteRequest(
  path: string,
  body: unknown,
  raw?: string | Buffer,
  options: RewriteOptions = {},
): RequestRewrite {
  const endpoint = endpointForPath(path);
  const stream = isObject(body) && body['stream'] === true;
  const limit = options.outputLimit;
  const writesLimit = limit !== undefined && LIMIT_FIELDS[endpoint].length > 0;
  if (!isObject(body)) {
    if (writesLimit) throw new RewriteError('the request body is not a JSON object');
    return { stream, clientWantsUsage: true, endpoint };
  }
  const inject = injectsUsage(path, body);
  const edits: [string, string][] = [];
  if (inject) {
    const current = body['stream_options'];
    edits.push([
      'stream_options',
      JSON.stringify({ ...(isObject(current) ? current : {}), include_usage: true }),
    ]);
  }
  if (writesLimit) {
    for (const [key, value] of limitEdits(endpoint, body, limit)) edits.push([key, String(value)]);
  }
  const result = { stream, clientWantsUsage: !inject, endpoint };
  if (edits.length === 0) return result;
  let spliced: Buffer | undefined = raw === undefined ? undefined : Buffer.from(raw);
  for (const [key, value] of edits) {
    if (spliced === undefined) break;
    spliced = spliceMember(spliced, key, value);
  }
  const newBody =
    spliced ??
    Buffer.from(
      JSON.stringify({
        ...body,
        ...Object.fromEntries(edits.map(([key, value]) => [key, JSON.parse(value) as unknown])),
      }),
      'utf8',
    );
  return { ...result, body: newBody };
}

/**
 * Replaces the value of top-level member `key` in a JSON object text (the last occurrence,
 * as JSON.parse keeps the last), or appends the member when absent. Returns undefined when
 * the text is not a single JSON object, so the caller falls back to re-serializing.
 */
export function spliceMember(
  raw: string | Buffer,
  key: string,
  valueJson: string,
): Buffer | undefined {
  const text = typeof raw === 'string' ? raw : raw.toString('utf8');
  // Invalid UTF-8 would not survive decoding; let the caller re-serialize instead.
  if (typeof raw !== 'string' && Buffer.byteLength(text, 'utf8') !== raw.length) return undefined;
  const layout = scanObject(text);
  if (!layout) return undefined;
  // JSON.parse keeps the last occurrence of a member, so that is the one to replace.
  const found = layout.members.findLast((m) => m.name === key);
  const last = layout.members.at(-1);
  let out: string;
  if (found !== undefined) {
    out = text.slice(0, found.start) + valueJson + text.slice(found.end);
  } else {
    const member = `${JSON.stringify(key)}:${valueJson}`;
    const at = last?.end ?? layout.objectEnd;
    out = text.slice(0, at) + (last === undefined ? member : `,${member}`) + text.slice(at);
  }
  return Buffer.from(out, 'utf8');
}
