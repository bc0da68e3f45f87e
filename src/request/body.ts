/**
 * Parses a request body once at admission, so authorization (model rules), budgets
 * (max_tokens) and metering read the same parsed object — and refuses a body that the
 * upstream could read differently from us (DESIGN 1.8):
 * - a JSON endpoint's body is parsed whatever its content-type says (a `text/plain` label
 *   must not hide the model from a rule while the upstream still reads JSON);
 * - a compressed body is refused: it cannot be judged;
 * - invalid UTF-8 is refused (decoded leniently it would be judged as U+FFFD while the raw
 *   bytes travel on); this needs the body as bytes (`pack_as_bytes: true`, as our Envoy
 *   bootstraps set it);
 * - a duplicated top-level member is refused (parsers disagree on which one wins);
 * - on a metered endpoint, `model` is required and plain, and the fields that size the
 *   reservation (`n`, `best_of`, `max_*tokens`, `stream`) must have their JSON types, so a
 *   lenient upstream cannot coerce `"n": "5"` into five paid choices we counted as one.
 */
import { isWriteMethod, type EndpointInfo } from './endpoint.js';
import { duplicateMember, scanObject } from './json-scan.js';
import { modelProblem } from './canonical.js';
import { deny } from '../domain/denials.js';
import type { Denial } from '../domain/decision.js';
import type { InboundRequest } from '../domain/request.js';

export type BodyResult =
  | { readonly ok: true; readonly json?: unknown; readonly model?: string }
  | { readonly ok: false; readonly denial: Denial };

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

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Fields of a metered body that size its reservation: integers when present. */
const COUNT_FIELDS = ['n', 'best_of', 'max_tokens', 'max_completion_tokens', 'max_output_tokens'];

/**
 * The most generations (`n`, `best_of`) a request may ask for: OpenAI's own maximum, and the
 * most a reservation counts (metering/estimate.ts). An upstream that honoured more would
 * produce output no reservation made room for, so more is refused here.
 */
export const MAX_GENERATIONS = 128;

function invalid(message: string): BodyResult {
  return { ok: false, denial: deny('invalid_body', message) };
}

function invalidModel(message: string): BodyResult {
  return { ok: false, denial: deny('invalid_model', message) };
}

/** Why a metered body's sizing fields could be read differently upstream, or undefined. */
function sizingProblem(body: Readonly<Record<string, unknown>>): string | undefined {
  for (const field of COUNT_FIELDS) {
    const value = body[field];
    if (value === undefined || value === null) continue;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0)
      return `"${field}" must be a non-negative integer`;
  }
  for (const field of ['n', 'best_of']) {
    const value = body[field];
    if (typeof value === 'number' && value > MAX_GENERATIONS) return `"${field}" must be at most ${MAX_GENERATIONS}`;
  }
  const stream = body['stream'];
  if (stream !== undefined && stream !== null && typeof stream !== 'boolean')
    return '"stream" must be a boolean';
  return undefined;
}

/**
 * Read the body of `request`, addressed to `endpoint`. JSON endpoints and JSON content types
 * are parsed; anything else (no body, multipart uploads, …) passes with nothing to judge.
 * `model` is set when the body is an object whose `model` is a string.
 */
export function readBody(request: InboundRequest, endpoint: EndpointInfo): BodyResult {
  // Reads, deletes and the like make no model work whatever their body says (endpoint.ts).
  if (!isWriteMethod(request.method)) return { ok: true };
  const raw = request.body;
  if (raw === undefined || raw.length === 0) {
    return endpoint.class === 'metered'
      ? invalidModel('the request has no body; a "model" is required')
      : { ok: true };
  }
  const encoding = request.headers['content-encoding']?.trim().toLowerCase();
  if (encoding !== undefined && encoding !== '' && encoding !== 'identity')
    return invalid(
      `compressed request bodies (content-encoding: ${encoding.slice(0, 32)}) are not accepted`,
    );
  if (!endpoint.json && !isJsonContentType(request.headers['content-type'])) return { ok: true };

  let text: string;
  try {
    text = typeof raw === 'string' ? raw : UTF8.decode(raw);
  } catch {
    return invalid('the request body is not valid UTF-8');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return invalid(`request body is not valid JSON: ${describeSyntaxError(err)}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return endpoint.class === 'metered'
      ? invalid('the request body must be a JSON object')
      : { ok: true, json };
  }
  const layout = scanObject(text);
  if (layout === undefined) return invalid('the request body could not be read as one JSON object');
  const duplicate = duplicateMember(layout);
  if (duplicate !== undefined)
    return invalid(`the request body names "${duplicate.slice(0, 64)}" twice`);
  const body = json as Record<string, unknown>;
  const model = body['model'];
  if (endpoint.class === 'metered') {
    if (model === undefined)
      return invalidModel('the request names no "model"; the gateway requires one');
    const sizing = sizingProblem(body);
    if (sizing !== undefined) return invalid(sizing);
  }
  if (model === undefined) return { ok: true, json };
  const problem = modelProblem(model);
  if (problem !== undefined) return invalidModel(problem);
  return { ok: true, json, model: model as string };
}
