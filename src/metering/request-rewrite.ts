/**
 * Request-side metering: make streaming chat/completions responses report usage
 * (`stream_options.include_usage: true`, openai.md §5) and remember whether the client asked
 * for it, so the meter removes the extra chunk again when it did not.
 */
import { endpointForPath, type Endpoint } from './endpoint.js';

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

/**
 * `body` is the parsed request JSON. Pass the original bytes as `raw` when available: the
 * edit is then spliced into them, leaving every other byte as the client sent it (a
 * parse/stringify round trip would silently change numbers beyond 2^53, e.g. a `seed`).
 */
export function rewriteRequest(path: string, body: unknown, raw?: string | Buffer): RequestRewrite {
  const endpoint = endpointForPath(path);
  const stream = isObject(body) && body['stream'] === true;
  if (!injectsUsage(path, body) || !isObject(body))
    return { stream, clientWantsUsage: true, endpoint };
  const current = body['stream_options'];
  const options = JSON.stringify({ ...(isObject(current) ? current : {}), include_usage: true });
  const spliced = raw === undefined ? undefined : spliceMember(raw, 'stream_options', options);
  const newBody =
    spliced ??
    Buffer.from(
      JSON.stringify({ ...body, stream_options: JSON.parse(options) as unknown }),
      'utf8',
    );
  return { body: newBody, stream, clientWantsUsage: false, endpoint };
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
  const layout = scanObject(text, key);
  if (!layout) return undefined;
  let out: string;
  if (layout.span) {
    out = text.slice(0, layout.span[0]) + valueJson + text.slice(layout.span[1]);
  } else {
    const member = `${JSON.stringify(key)}:${valueJson}`;
    const at = layout.lastValueEnd ?? layout.objectEnd;
    out =
      text.slice(0, at) +
      (layout.lastValueEnd === undefined ? member : `,${member}`) +
      text.slice(at);
  }
  return Buffer.from(out, 'utf8');
}

interface Layout {
  objectEnd: number;
  lastValueEnd?: number;
  span?: [number, number];
}

function skipWs(text: string, i: number): number {
  while (i < text.length && ' \t\r\n'.includes(text[i] ?? '')) i++;
  return i;
}

/** Index just after the string literal starting at `i`, or -1. */
function stringEnd(text: string, i: number): number {
  for (let j = i + 1; j < text.length; j++) {
    const c = text[j];
    if (c === '\\') j++;
    else if (c === '"') return j + 1;
  }
  return -1;
}

/** Index just after the JSON value starting at `i`, or -1. Linear; strings are skipped whole. */
function valueEnd(text: string, i: number): number {
  const c = text[i];
  if (c === '"') return stringEnd(text, i);
  if (c === '{' || c === '[') {
    let depth = 0;
    for (let j = i; j < text.length; j++) {
      const d = text[j];
      if (d === '"') {
        j = stringEnd(text, j) - 1;
        if (j < 0) return -1;
      } else if (d === '{' || d === '[') depth++;
      else if (d === '}' || d === ']') {
        depth--;
        if (depth === 0) return j + 1;
      }
    }
    return -1;
  }
  let j = i;
  while (j < text.length && !',}] \t\r\n'.includes(text[j] ?? '')) j++;
  return j > i ? j : -1;
}

function scanObject(text: string, key: string): Layout | undefined {
  let i = skipWs(text, 0);
  if (text[i] !== '{') return undefined;
  i = skipWs(text, i + 1);
  const layout: Layout = { objectEnd: -1 };
  if (text[i] === '}') layout.objectEnd = i;
  while (layout.objectEnd < 0) {
    if (text[i] !== '"') return undefined;
    const keyEnd = stringEnd(text, i);
    if (keyEnd < 0) return undefined;
    let name: unknown;
    try {
      name = JSON.parse(text.slice(i, keyEnd));
    } catch {
      return undefined;
    }
    i = skipWs(text, keyEnd);
    if (text[i] !== ':') return undefined;
    const start = skipWs(text, i + 1);
    const end = valueEnd(text, start);
    if (end < 0) return undefined;
    if (name === key) layout.span = [start, end];
    layout.lastValueEnd = end;
    i = skipWs(text, end);
    if (text[i] === ',') i = skipWs(text, i + 1);
    else if (text[i] === '}') layout.objectEnd = i;
    else return undefined;
  }
  return skipWs(text, layout.objectEnd + 1) === text.length ? layout : undefined;
}
