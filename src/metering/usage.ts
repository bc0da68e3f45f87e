/**
 * Reading provider-reported usage from response bodies and stream events (openai.md §4, §5).
 * Everything here is defensive: bodies come from an upstream we do not control, and a
 * malformed one must yield `undefined` (→ the caller estimates), never an exception.
 */
import type { SseEvent } from './sse.js';

/** Tokens one request consumed. The `*Tokens?` breakdowns are parts of the totals, never extra. */
export interface Usage {
  inputTokens: number;
  outputTokens: number;
  totalTokens: number;
  /** Part of `inputTokens` served from the prompt cache. */
  cachedInputTokens?: number;
  /** Part of `outputTokens` spent on hidden reasoning. */
  reasoningTokens?: number;
  /** `provider`: reported by the upstream; `estimated`: counted by us (abort, reset, no usage). */
  source: 'provider' | 'estimated';
}

/** Responses API stream events that carry the final `response` object with its usage. */
export const RESPONSES_TERMINAL_EVENTS: ReadonlySet<string> = new Set([
  'response.completed',
  'response.incomplete',
  'response.failed',
]);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A token count, or undefined when the field is absent or not a sane number. */
function count(value: unknown): number | undefined {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) return undefined;
  // Fractions should not happen; rounding up keeps "never lose a token".
  return Math.min(Math.ceil(value), Number.MAX_SAFE_INTEGER);
}

function detail(details: unknown, key: string): number | undefined {
  return isObject(details) ? count(details[key]) : undefined;
}

/**
 * Parses one `usage` object in either naming: chat/completions/embeddings
 * (`prompt_tokens`/`completion_tokens`) or the Responses API (`input_tokens`/`output_tokens`).
 */
export function parseUsageObject(usage: unknown): Usage | undefined {
  if (!isObject(usage)) return undefined;
  const responsesShape = 'input_tokens' in usage || 'output_tokens' in usage;
  const input = count(responsesShape ? usage['input_tokens'] : usage['prompt_tokens']);
  const output = count(responsesShape ? usage['output_tokens'] : usage['completion_tokens']);
  const total = count(usage['total_tokens']);
  if (input === undefined && output === undefined && total === undefined) return undefined;

  let inputTokens = input ?? 0;
  const outputTokens = output ?? 0;
  // Only a total (an unusual provider): charge it all as input rather than lose it.
  if (input === undefined && output === undefined && total !== undefined) inputTokens = total;
  // A total below input + output is inconsistent; the larger figure never loses tokens.
  const totalTokens = Math.max(total ?? 0, inputTokens + outputTokens);

  const result: Usage = { inputTokens, outputTokens, totalTokens, source: 'provider' };
  const inDetails = responsesShape ? usage['input_tokens_details'] : usage['prompt_tokens_details'];
  const outDetails = responsesShape
    ? usage['output_tokens_details']
    : usage['completion_tokens_details'];
  const cached = detail(inDetails, 'cached_tokens');
  const reasoning = detail(outDetails, 'reasoning_tokens');
  // Breakdowns live inside the totals: clamp so a bogus detail can never exceed its total.
  if (cached !== undefined) result.cachedInputTokens = Math.min(cached, inputTokens);
  if (reasoning !== undefined) result.reasoningTokens = Math.min(reasoning, outputTokens);
  return result;
}

/**
 * Usage from a parsed, non-streaming response body: chat completions, legacy completions,
 * embeddings (no output tokens) and Responses API objects. A Responses terminal stream event
 * (`{type: 'response.completed', response: {usage}}`) is accepted too.
 */
export function usageFromJson(body: unknown): Usage | undefined {
  if (!isObject(body)) return undefined;
  const direct = parseUsageObject(body['usage']);
  if (direct) return direct;
  const type = body['type'];
  if (
    typeof type === 'string' &&
    RESPONSES_TERMINAL_EVENTS.has(type) &&
    isObject(body['response'])
  ) {
    return parseUsageObject(body['response']['usage']);
  }
  return undefined;
}

/**
 * Usage from a parsed stream event payload. `eventName` is the SSE `event:` field, when any
 * (the Responses API sends it; the JSON `type` is used when it is missing).
 */
export function usageFromEventData(data: unknown, eventName?: string): Usage | undefined {
  if (!isObject(data)) return undefined;
  const jsonType = typeof data['type'] === 'string' ? data['type'] : undefined;
  const type = eventName ?? jsonType;
  if (type !== undefined && type.startsWith('response.')) {
    if (!RESPONSES_TERMINAL_EVENTS.has(type) || !isObject(data['response'])) return undefined;
    return parseUsageObject(data['response']['usage']);
  }
  // Chat / completions: normally the `choices: []` chunk before [DONE]; some compatible
  // providers put usage on the last content chunk instead, which is read the same way.
  return parseUsageObject(data['usage']);
}

/** Parses an event's JSON data; undefined for `[DONE]`, comments and anything not JSON. */
export function parseEventData(event: SseEvent): unknown {
  const data = event.data;
  if (data === '' || data === '[DONE]') return undefined;
  const first = data.charCodeAt(0);
  if (first !== 0x7b /* { */ && first !== 0x20 && first !== 0x0a && first !== 0x09)
    return undefined;
  try {
    return JSON.parse(data) as unknown;
  } catch {
    return undefined;
  }
}

/** Usage carried by one stream event: the chat/completions usage chunk or a Responses terminal event. */
export function usageFromEvent(event: SseEvent): Usage | undefined {
  const data = parseEventData(event);
  return data === undefined ? undefined : usageFromEventData(data, event.event);
}
