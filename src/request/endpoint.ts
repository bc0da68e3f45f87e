/**
 * The endpoint catalogue: which OpenAI API a request addresses, and so how the gateway can
 * judge it (DESIGN 1.8). Classified on the canonical path (request/canonical.ts refuses every
 * other form), case-insensitively, so `/V1/Chat/Completions` is judged as the chat endpoint it
 * would be on a case-insensitive upstream (on a case-sensitive one it is a 404, and judging it
 * strictly costs nothing).
 *
 * Classes:
 * - `metered`: the model is named in the JSON body and the response reports usage — rules see
 *   the model, budgets reserve and settle (chat, completions, embeddings, responses).
 * - `inspected`: a JSON body whose `model` the rules judge, and no tokens to meter
 *   (moderations, the Responses token counter).
 * - `indirect`: the provider runs models the gate cannot see or meter: later (batches,
 *   fine-tuning, assistant runs), out of band (a Realtime client secret is used directly
 *   against the provider), behind multipart bodies (audio, image edits), or priced in
 *   something other than tokens (image generation, speech). Also every path not in this
 *   catalogue: an unknown endpoint may run models. With model rules or token budgets
 *   configured, these are refused unless a rule allows them explicitly (policy/rules.ts).
 * - `plain`: no model work (reads, deletes, uploads, cancellations, the model list).
 */

/** Which metered API a request addresses; decides how bodies are read and metered. */
export type Endpoint = 'chat' | 'completions' | 'embeddings' | 'responses' | 'other';

export type EndpointClass = 'metered' | 'inspected' | 'indirect' | 'plain';

export interface EndpointInfo {
  readonly class: EndpointClass;
  /** The metered API, or `other`. */
  readonly endpoint: Endpoint;
  /** The catalogue row, for messages and the docs (`chat`, `batches`, `unknown`, …). */
  readonly name: string;
  /** The body is JSON and is read as JSON whatever its content-type says. */
  readonly json: boolean;
}

interface Row {
  /** Path segments after `/v1`, lower-case; `{id}` stands for any one segment. */
  readonly pattern: readonly string[];
  readonly info: EndpointInfo;
}

function row(path: string, cls: EndpointClass, json: boolean, endpoint: Endpoint = 'other'): Row {
  const pattern = path.split('/');
  return { pattern, info: Object.freeze({ class: cls, endpoint, name: path, json }) };
}

/**
 * POST requests. Rows are tried in order; the first whose pattern
 * matches every segment wins. Anything unmatched is `indirect` (see the file comment).
 */
const WRITES: readonly Row[] = [
  row('chat/completions', 'metered', true, 'chat'),
  row('completions', 'metered', true, 'completions'),
  row('embeddings', 'metered', true, 'embeddings'),
  row('responses', 'metered', true, 'responses'),
  row('moderations', 'inspected', true),
  row('responses/input_tokens', 'inspected', true),
  // Edits of stored objects and cancellations: no model runs.
  row('chat/completions/{id}', 'plain', true),
  row('responses/{id}/cancel', 'plain', false),
  row('batches/{id}/cancel', 'plain', false),
  row('fine_tuning/jobs/{id}/cancel', 'plain', false),
  row('fine_tuning/jobs/{id}/pause', 'plain', false),
  row('fine_tuning/jobs/{id}/resume', 'plain', false),
  // Uploads store bytes; the model work is the batch or fine-tuning job that uses them later.
  row('files', 'plain', false),
  row('uploads', 'plain', true),
  row('uploads/{id}/parts', 'plain', false),
  row('uploads/{id}/complete', 'plain', true),
  row('uploads/{id}/cancel', 'plain', false),
  row('conversations', 'plain', true),
  row('conversations/{id}', 'plain', true),
  row('conversations/{id}/items', 'plain', true),
  // Model work the gate cannot meter; JSON ones still show their `model` to the rules.
  row('batches', 'indirect', true),
  row('fine_tuning/jobs', 'indirect', true),
  row('responses/compact', 'indirect', true),
  row('images/generations', 'indirect', true),
  row('audio/speech', 'indirect', true),
  row('assistants', 'indirect', true),
  row('assistants/{id}', 'indirect', true),
  row('threads', 'indirect', true),
  row('threads/runs', 'indirect', true),
  row('threads/{id}/runs', 'indirect', true),
  row('realtime/sessions', 'indirect', true),
  row('realtime/client_secrets', 'indirect', true),
  row('realtime/transcription_sessions', 'indirect', true),
  row('images/edits', 'indirect', false),
  row('images/variations', 'indirect', false),
  row('audio/transcriptions', 'indirect', false),
  row('audio/translations', 'indirect', false),
];

const UNKNOWN_WRITE: EndpointInfo = Object.freeze({
  class: 'indirect',
  endpoint: 'other',
  name: 'unknown',
  json: false,
});
const READ: EndpointInfo = Object.freeze({
  class: 'plain',
  endpoint: 'other',
  name: 'read',
  json: false,
});
/** Realtime over WebSocket (`GET /v1/realtime?model=…`) or WebRTC runs models directly. */
const REALTIME: EndpointInfo = Object.freeze({
  class: 'indirect',
  endpoint: 'other',
  name: 'realtime',
  json: false,
});

/** Methods that can make a provider do work; OpenAI's API writes only with POST. */
const WRITE_METHODS: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH']);

/** POST, PUT or PATCH: a request whose body can ask for work. */
export function isWriteMethod(method: string): boolean {
  return WRITE_METHODS.has(method.toUpperCase());
}

function matches(pattern: readonly string[], segments: readonly string[]): boolean {
  if (pattern.length !== segments.length) return false;
  return pattern.every((p, i) => p === '{id}' || p === segments[i]);
}

/** The path's segments after `/v1`, lower-case, or undefined for a path outside `/v1/`. */
function apiSegments(path: string): string[] | undefined {
  let p = path;
  const q = p.search(/[?#]/);
  if (q >= 0) p = p.slice(0, q);
  const segments = p
    .toLowerCase()
    .split('/')
    .filter((s) => s !== '');
  if (segments[0] !== 'v1') return undefined;
  return segments.slice(1);
}

/** The catalogue entry of a request (method + canonical path). */
export function classify(method: string, path: string): EndpointInfo {
  const segments = apiSegments(path);
  if (segments?.[0] === 'realtime') return REALTIME;
  const m = method.toUpperCase();
  if (!isWriteMethod(m)) return READ;
  // PUT and PATCH are not OpenAI's; whatever an upstream does with them is unknown.
  if (segments === undefined || m !== 'POST') return UNKNOWN_WRITE;
  return WRITES.find((r) => matches(r.pattern, segments))?.info ?? UNKNOWN_WRITE;
}

/**
 * The metered API a path addresses (`other` for everything else), whatever the method:
 * exactly `/v1/chat/completions`, `/v1/completions`, `/v1/embeddings` or `/v1/responses`,
 * in any letter case. Sub-resources such as `/v1/responses/{id}` are `other`.
 */
export function endpointForPath(path: string): Endpoint {
  return classify('POST', path).endpoint;
}

/** The rows of the catalogue, for the docs test that keeps docs/endpoints.md in step. */
export function catalogueRows(): readonly { readonly path: string; readonly info: EndpointInfo }[] {
  return WRITES.map((r) => ({ path: `/v1/${r.pattern.join('/')}`, info: r.info }));
}

/** True for a list request: `GET …/models`, whatever the prefix (`/v1`, `/openai/v1`, …). */
export function isModelList(method: string, path: string): boolean {
  if (method.toUpperCase() !== 'GET') return false;
  let p = path;
  const q = p.search(/[?#]/);
  if (q >= 0) p = p.slice(0, q);
  while (p.length > 1 && p.endsWith('/')) p = p.slice(0, -1);
  return p === '/models' || p.endsWith('/models');
}
