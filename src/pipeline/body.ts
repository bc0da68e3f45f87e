/**
 * Parses a request body once at admission, so authorization (model rules), budgets
 * (max_tokens) and metering read the same parsed object.
 */
import { deny } from './denials.js';
import type { Denial, GatewayRequest } from './types.js';

export type BodyResult =
  | { readonly ok: true; readonly json?: unknown; readonly model?: string }
  | { readonly ok: false; readonly denial: Denial };

/**
 * OpenAI endpoints whose bodies are always JSON. They are parsed whatever the content-type
 * says: otherwise a caller could dodge a `models:` rule by labelling the body `text/plain`
 * while the upstream still reads it as JSON.
 */
export const JSON_ENDPOINTS: ReadonlySet<string> = new Set([
  '/v1/chat/completions',
  '/v1/completions',
  '/v1/embeddings',
  '/v1/responses',
]);

/** `application/json`, `application/json; charset=utf-8`, `application/vnd.foo+json`, … */
function isJsonContentType(value: string | undefined): boolean {
  if (value === undefined) return false;
  const mediaType = (value.split(';', 1)[0] ?? '').trim().toLowerCase();
  return (
    mediaType === 'application/json' ||
    (mediaType.startsWith('application/') && mediaType.endsWith('+json'))
  );
}

/**
 * Describe a JSON syntax error without echoing the body: V8's messages quote a slice of the
 * input, and bodies (prompts) must never reach logs.
 */
function describeSyntaxError(err: unknown): string {
  const text = err instanceof Error ? err.message : '';
  if (/end of JSON input/i.test(text)) return 'unexpected end of input';
  const position = /position (\d+)/.exec(text);
  return position !== null ? `syntax error at position ${position[1]}` : 'syntax error';
}

/**
 * Read the body of `request`. JSON content types and POSTs to the known JSON endpoints are
 * parsed; anything else (no body, GET/HEAD, multipart uploads, …) passes with nothing.
 * `model` is set when the body is an object whose `model` is a string.
 */
export function readBody(request: GatewayRequest): BodyResult {
  const method = request.method.toUpperCase();
  const body = request.body;
  if (method === 'GET' || method === 'HEAD' || body === undefined || body.length === 0)
    return { ok: true };
  const isJson =
    isJsonContentType(request.headers['content-type']) ||
    (method === 'POST' && JSON_ENDPOINTS.has(request.path));
  if (!isJson) return { ok: true };

  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch (err) {
    return {
      ok: false,
      denial: deny('invalid_body', `request body is not valid JSON: ${describeSyntaxError(err)}`),
    };
  }
  if (typeof json === 'object' && json !== null && !Array.isArray(json)) {
    const model: unknown = (json as Record<string, unknown>)['model'];
    if (typeof model === 'string') return { ok: true, json, model };
  }
  return { ok: true, json };
}
