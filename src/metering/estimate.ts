/**
 * Request-side token estimates (DESIGN 1.6), two ways over the same walk of the body:
 * - `quickPromptEstimate`, at admission: every text field at one token per three UTF-8 bytes,
 *   plus the cookbook's fixed overheads. No tokenizer runs on the Check path: it was the
 *   largest piece of a Check's own work (bench/OPTIMISATIONS.md). Three bytes a token errs
 *   high for English (about four characters a token) and code, and is about right for CJK;
 *   budgets reserve it and settle to the provider's real usage, so it only needs to be close
 *   and high rather than exact.
 * - `estimatePrompt`, when a response ends without usage: the prompt counted with the model
 *   family's real tokenizer, charged as `estimated` input.
 * Both add the most output the request may produce for the reservation. Never throws: a body
 * we cannot read estimates to 0 prompt tokens.
 */
import { endpointForPath } from '../request/endpoint.js';
import { MAX_GENERATIONS } from '../request/body.js';
import { BudgetedCounter } from './tokenizer.js';

/** Counts the tokens of one text field. */
interface TextCounter {
  count(text: string): number;
}

/** UTF-8 bytes per token assumed at admission (see the file comment). */
export const QUICK_BYTES_PER_TOKEN = 3;

/** The admission count: one token per three UTF-8 bytes, rounded up per field. */
const BYTE_COUNTER: TextCounter = {
  count: (text) =>
    text.length === 0 ? 0 : Math.ceil(Buffer.byteLength(text, 'utf8') / QUICK_BYTES_PER_TOKEN),
};

/** Cookbook rule (gpt-3.5-turbo-0613 and later, gpt-4o family): tokens per message… */
const TOKENS_PER_MESSAGE = 3;
/** …one more when the message has a `name`… */
const TOKENS_PER_NAME = 1;
/** …and 3 to prime the assistant's reply. */
const REPLY_PRIMING = 3;
/** Images: a 512-px tile grid at high detail for a ~1024² image (gpt-4o: 85 + 4 × 170). */
const IMAGE_TOKENS = 765;
/** Images with `detail: low` cost a flat 85 on gpt-4o models. */
const IMAGE_LOW_TOKENS = 85;
/** Audio and files have no cheap size rule; reserve a margin and settle to real usage. */
const OTHER_PART_TOKENS = 1000;
/** The Check refuses `n` / `best_of` above this (request/body.ts); kept here as a bound too. */
const MAX_CHOICES = MAX_GENERATIONS;

type Obj = Record<string, unknown>;

function isObject(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function str(value: unknown, tk: TextCounter): number {
  return typeof value === 'string' ? tk.count(value) : 0;
}

/** Tool definitions and schemas are sent to the model as text of about their JSON size. */
function json(value: unknown, tk: TextCounter): number {
  if (value === undefined || value === null) return 0;
  try {
    return tk.count(JSON.stringify(value) ?? '');
  } catch {
    return 0;
  }
}

/** A content part of a chat message or a Responses input item. */
function part(p: unknown, tk: TextCounter): number {
  if (typeof p === 'string') return tk.count(p);
  if (!isObject(p)) return 0;
  const type = p['type'];
  if (type === 'image_url' || type === 'input_image') {
    const image = isObject(p['image_url']) ? p['image_url'] : p;
    return image['detail'] === 'low' ? IMAGE_LOW_TOKENS : IMAGE_TOKENS;
  }
  if (type === 'input_audio' || type === 'file' || type === 'input_file') return OTHER_PART_TOKENS;
  if (typeof p['text'] === 'string') return tk.count(p['text']);
  if (typeof p['refusal'] === 'string') return tk.count(p['refusal']);
  return 0;
}

function content(value: unknown, tk: TextCounter): number {
  if (typeof value === 'string') return tk.count(value);
  if (!Array.isArray(value)) return 0;
  let n = 0;
  for (const p of value) n += part(p, tk);
  return n;
}

function functionCall(call: unknown, tk: TextCounter): number {
  if (!isObject(call)) return 0;
  const fn = isObject(call['function']) ? call['function'] : call;
  return str(fn['name'], tk) + str(fn['arguments'], tk);
}

/** One chat message: 3 + every string field (role, content, name, …) + 1 for a name. */
function chatMessage(message: unknown, tk: TextCounter): number {
  if (!isObject(message)) return 0;
  let n = TOKENS_PER_MESSAGE;
  for (const [key, value] of Object.entries(message)) {
    if (typeof value === 'string') {
      n += tk.count(value);
      if (key === 'name') n += TOKENS_PER_NAME;
    } else if (key === 'content') n += content(value, tk);
    else if (key === 'tool_calls' && Array.isArray(value)) {
      for (const call of value) n += functionCall(call, tk);
    } else if (key === 'function_call') n += functionCall(value, tk);
  }
  return n;
}

function chatPrompt(body: Obj, tk: TextCounter): number {
  let n = REPLY_PRIMING;
  if (Array.isArray(body['messages'])) for (const m of body['messages']) n += chatMessage(m, tk);
  return (
    n + json(body['tools'], tk) + json(body['functions'], tk) + json(body['response_format'], tk)
  );
}

/** Completions `prompt` / embeddings `input`: a string, strings, token ids, or lists of token ids. */
function textsOrTokenIds(value: unknown, tk: TextCounter): number {
  if (typeof value === 'string') return tk.count(value);
  if (!Array.isArray(value)) return 0;
  let n = 0;
  for (const item of value) {
    if (typeof item === 'number') n += 1;
    else if (typeof item === 'string') n += tk.count(item);
    else if (Array.isArray(item)) n += item.length;
  }
  return n;
}

/** One Responses API input item: a message, a function call or its output, or a reference. */
function responsesItem(item: unknown, tk: TextCounter): number {
  if (typeof item === 'string') return TOKENS_PER_MESSAGE + tk.count(item);
  if (!isObject(item)) return 0;
  const type = item['type'];
  if (type === 'function_call') return TOKENS_PER_MESSAGE + functionCall(item, tk);
  if (type === 'function_call_output') {
    const out = item['output'];
    return TOKENS_PER_MESSAGE + (typeof out === 'string' ? tk.count(out) : content(out, tk));
  }
  if (type === undefined || type === 'message') {
    return TOKENS_PER_MESSAGE + str(item['role'], tk) + content(item['content'], tk);
  }
  // Reasoning items (opaque encrypted text), item references, tool-call records: their real
  // size is unknown here; a fixed overhead keeps them cheap to estimate.
  return TOKENS_PER_MESSAGE;
}

function responsesPrompt(body: Obj, tk: TextCounter): number {
  let n = REPLY_PRIMING;
  const input = body['input'];
  if (typeof input === 'string') n += TOKENS_PER_MESSAGE + tk.count('user') + tk.count(input);
  else if (Array.isArray(input)) for (const item of input) n += responsesItem(item, tk);
  if (typeof body['instructions'] === 'string') {
    n += TOKENS_PER_MESSAGE + tk.count('system') + tk.count(body['instructions']);
  }
  const text = body['text'];
  return n + json(body['tools'], tk) + (isObject(text) ? json(text['format'], tk) : 0);
}

/** Tuning for huge prompts (see BudgetedCounter). */
export interface EstimateOptions {
  /** Characters tokenized exactly per request; the rest is extrapolated. Default 32768. */
  exactChars?: number;
}

/** About 30 ms of tokenizing on a slow core: a bound on the time one count may take. */
const DEFAULT_EXACT_CHARS = 32_768;

/** Walks a request body with `tk` for each text field; 0 for a body that is not an object. */
function promptOf(path: string, body: unknown, tk: TextCounter): number {
  if (!isObject(body)) return 0;
  try {
    switch (endpointForPath(path)) {
      case 'chat':
        return chatPrompt(body, tk);
      case 'completions':
        return textsOrTokenIds(body['prompt'], tk) + str(body['suffix'], tk);
      case 'embeddings':
        return textsOrTokenIds(body['input'], tk);
      case 'responses':
        return responsesPrompt(body, tk);
      case 'other':
        return 0;
    }
  } catch {
    return 0;
  }
}

/**
 * Prompt tokens of a request body (already parsed JSON), counted with `model`'s tokenizer.
 * With `previous_response_id` the earlier conversation is invisible here; settlement
 * corrects it.
 */
export function estimatePrompt(
  path: string,
  body: unknown,
  model: string,
  opts: EstimateOptions = {},
): number {
  if (!isObject(body)) return 0;
  return promptOf(path, body, new BudgetedCounter(model, opts.exactChars ?? DEFAULT_EXACT_CHARS));
}

/** Handoff's prompt estimate: the same walk at one token per three UTF-8 bytes. */
export function quickPromptEstimate(path: string, body: unknown): number {
  return promptOf(path, body, BYTE_COUNTER);
}

function nonNegativeInt(value: unknown): number | undefined {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) return undefined;
  return Math.min(Math.ceil(value), Number.MAX_SAFE_INTEGER);
}

/**
 * The output a background Responses request (`background: true`) may produce out of sight:
 * the provider runs it after its answer (`queued`) and after a client that left a stream, and
 * its usage is read later with `GET /v1/responses/{id}`, which is not metered. That output is
 * bounded only by the limit the upstream is sent: `written` (the limit ext_proc writes, when
 * it writes one), else the request's own `max_output_tokens`. Undefined for any other request,
 * or when no limit bounds it (then no budget applies and nothing was reserved for it).
 */
export function backgroundOutput(path: string, body: unknown, written: number | undefined): number | undefined {
  if (endpointForPath(path) !== 'responses' || !isObject(body) || body['background'] !== true) return undefined;
  return written ?? nonNegativeInt(body['max_output_tokens']);
}

/** OpenAI's default `max_tokens` for legacy completions (openai.md §6). */
export const COMPLETIONS_DEFAULT_MAX_TOKENS = 16;

/** What admission reserves: prompt estimate + the output cap × the number of generations. */
export interface Reservation {
  prompt: number;
  /** `outputLimit × generations`. */
  maxOutput: number;
  /** The request's worst case: `prompt + maxOutput`. */
  total: number;
  /**
   * How many outputs the per-output limit applies to: `n` (chat), `max(n, best_of)`
   * (completions), 1 (responses); 0 where nothing is generated (embeddings, other paths).
   */
  generations: number;
  /** The most output tokens per generation: the request's own limit, else the default. */
  outputLimit: number;
  /** The request names its own output limit (so writing one is needed only to lower it). */
  limitGiven: boolean;
}

/**
 * What admission reserves: the quick prompt estimate plus the output cap. Output cap:
 * `max_completion_tokens` / `max_tokens` (chat; the larger when both are given, since
 * providers differ in which one wins), `max_tokens` (completions), `max_output_tokens`
 * (responses), else `defaultMaxOutputTokens` (completions: the API's own default of 16,
 * COMPLETIONS_DEFAULT_MAX_TOKENS). Chat multiplies by `n`; completions by the
 * larger of `n` and `best_of` (every candidate is billed). Embeddings produce no output;
 * other endpoints reserve nothing. `_model` is kept for callers: the admission estimate does
 * not depend on the tokenizer family.
 */
export function estimateReservation(
  path: string,
  body: unknown,
  _model: string,
  defaultMaxOutputTokens: number,
): Reservation {
  const prompt = quickPromptEstimate(path, body);
  const b = isObject(body) ? body : {};
  const fallback = nonNegativeInt(defaultMaxOutputTokens) ?? 0;
  const choices = Math.min(nonNegativeInt(b['n']) || 1, MAX_CHOICES);
  let given: number | undefined;
  let generations = 0;
  switch (endpointForPath(path)) {
    case 'chat': {
      const completion = nonNegativeInt(b['max_completion_tokens']);
      const legacy = nonNegativeInt(b['max_tokens']);
      given =
        completion === undefined || legacy === undefined
          ? (completion ?? legacy)
          : Math.max(completion, legacy);
      generations = choices;
      break;
    }
    case 'completions':
      given = nonNegativeInt(b['max_tokens']);
      generations = Math.min(Math.max(choices, nonNegativeInt(b['best_of']) || 1), MAX_CHOICES);
      break;
    case 'responses':
      given = nonNegativeInt(b['max_output_tokens']);
      generations = 1;
      break;
    case 'embeddings':
    case 'other':
      break;
  }
  // Legacy completions default to 16 tokens, not to "as much as the model allows": the
  // default there is the API's own, so writing it keeps what the caller gets unchanged.
  const absent = endpointForPath(path) === 'completions' ? COMPLETIONS_DEFAULT_MAX_TOKENS : fallback;
  const outputLimit = generations === 0 ? 0 : (given ?? absent);
  const maxOutput = outputLimit * generations;
  return {
    prompt,
    maxOutput,
    total: prompt + maxOutput,
    generations,
    outputLimit,
    limitGiven: generations > 0 && given !== undefined,
  };
}
