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
import { scanObject, type ObjectLayout } from '../request/json-scan.js';
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

/** The members of a request body that decide its edits (all small); the rest is never parsed. */
const DECIDING = ['stream', 'stream_options', 'max_tokens', 'max_completion_tokens', 'max_output_tokens'];

/**
 * The top level of a JSON object in bytes, scanned without decoding the whole body: in a
 * latin1 view every byte is one character, so offsets are byte offsets, and JSON's
 * structural characters are ASCII. A multi-megabyte body (base64 images) costs a copy and a
 * scan that jumps from quote to quote, not a parse.
 */
function layoutOf(raw: Buffer): ObjectLayout | undefined {
  return scanObject(raw.toString('latin1'));
}

/** The deciding members of `raw`, parsed from their own UTF-8 bytes (undefined: not an object). */
function decidingMembers(raw: Buffer, layout: ObjectLayout): Obj | undefined {
  const out: Obj = {};
  for (const m of layout.members) {
    if (!DECIDING.includes(m.name)) continue;
    try {
      // The last occurrence wins, as JSON.parse would have it.
      out[m.name] = JSON.parse(raw.subarray(m.start, m.end).toString('utf8')) as unknown;
    } catch {
      return undefined;
    }
  }
  return out;
}

/**
 * `body` is the parsed request JSON; `raw`, when given, the bytes the upstream will receive,
 * which then decide everything: the edits are read from their top-level members and spliced
 * into them, leaving every other byte as the client sent it (a parse/stringify round trip
 * would silently change numbers beyond 2^53, e.g. a `seed`), and a large body is never
 * parsed whole. With `outputLimit`, throws RewriteError when the body is not a JSON object
 * (it cannot carry the limit, so the caller must not forward it unbounded).
 */
export function rewriteRequest(
  path: string,
  body: unknown,
  raw?: string | Buffer,
  options: RewriteOptions = {},
): RequestRewrite {
  const bytes = raw === undefined ? undefined : typeof raw === 'string' ? Buffer.from(raw, 'utf8') : raw;
  const layout = bytes === undefined ? undefined : layoutOf(bytes);
  const read = bytes !== undefined && layout !== undefined ? decidingMembers(bytes, layout) : bytes === undefined ? body : undefined;
  const endpoint = endpointForPath(path);
  const stream = isObject(read) && read['stream'] === true;
  const limit = options.outputLimit;
  const writesLimit = limit !== undefined && LIMIT_FIELDS[endpoint].length > 0;
  if (!isObject(read)) {
    if (writesLimit) throw new RewriteError('the request body is not a JSON object');
    return { stream, clientWantsUsage: true, endpoint };
  }
  const inject = injectsUsage(path, read);
  const edits: [string, string][] = [];
  if (inject) {
    const current = read['stream_options'];
    edits.push(['stream_options', JSON.stringify({ ...(isObject(current) ? current : {}), include_usage: true })]);
  }
  if (writesLimit) {
    for (const [key, value] of limitEdits(endpoint, read, limit)) edits.push([key, String(value)]);
  }
  const result = { stream, clientWantsUsage: !inject, endpoint };
  if (edits.length === 0) return result;
  if (bytes === undefined) {
    const replaced = Object.fromEntries(edits.map(([key, value]) => [key, JSON.parse(value) as unknown]));
    return { ...result, body: Buffer.from(JSON.stringify({ ...read, ...replaced }), 'utf8') };
  }
  let spliced = bytes;
  for (const [key, value] of edits) spliced = spliceMember(spliced, key, value) ?? spliced;
  return { ...result, body: spliced };
}

/**
 * Replaces the value of top-level member `key` in a JSON object's bytes (the last occurrence,
 * as JSON.parse keeps the last), or appends the member when absent; every other byte stays.
 * Returns undefined when the bytes are not a single JSON object.
 */
export function spliceMember(raw: string | Buffer, key: string, valueJson: string): Buffer | undefined {
  const bytes = typeof raw === 'string' ? Buffer.from(raw, 'utf8') : raw;
  const layout = layoutOf(bytes);
  if (!layout) return undefined;
  const found = layout.members.findLast((m) => m.name === key);
  const value = Buffer.from(valueJson, 'utf8');
  if (found !== undefined) return Buffer.concat([bytes.subarray(0, found.start), value, bytes.subarray(found.end)]);
  const last = layout.members.at(-1);
  const at = last?.end ?? layout.objectEnd;
  const member = Buffer.from(`${last === undefined ? '' : ','}${JSON.stringify(key)}:`, 'utf8');
  return Buffer.concat([bytes.subarray(0, at), member, value, bytes.subarray(at)]);
}
