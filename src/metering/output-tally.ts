/**
 * Counts the output a response has delivered so far, for when no provider usage arrives
 * (openai.md §5 "Estimating after an interruption"): per choice, the streamed
 * `delta.content`, `delta.refusal` and tool-call `function.name` / `function.arguments`; for
 * the Responses API the output text, refusal and function-call argument deltas. Counting is
 * incremental (see TokenCounter), so memory stays bounded however long the stream runs.
 * `obfuscation` padding and other metadata are never counted.
 */
import { TokenCounter } from './tokenizer.js';

/** More distinct outputs than this (choices × tool calls) share one counter: bounded memory. */
const MAX_COUNTERS = 256;

type Obj = Record<string, unknown>;

function isObject(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function index(value: unknown): string {
  return typeof value === 'number' && Number.isSafeInteger(value) ? String(value) : '0';
}

export class OutputTally {
  private readonly counters = new Map<string, TokenCounter>();
  private overflow: TokenCounter | undefined;

  private readonly model: string;

  constructor(model: string) {
    this.model = model;
  }

  /** Estimated output tokens so far. */
  get tokens(): number {
    let n = this.overflow?.tokens ?? 0;
    for (const counter of this.counters.values()) n += counter.tokens;
    return n;
  }

  /** Observes one parsed stream event (chat, completions or Responses API). */
  observeEvent(data: unknown, eventName?: string): void {
    if (!isObject(data)) return;
    const type = eventName ?? (typeof data['type'] === 'string' ? data['type'] : undefined);
    if (type !== undefined && type.startsWith('response.')) {
      this.observeResponsesEvent(type, data);
      return;
    }
    const choices = data['choices'];
    if (!Array.isArray(choices)) return;
    for (const choice of choices) {
      if (!isObject(choice)) continue;
      const c = index(choice['index']);
      this.add(`${c}:text`, choice['text']); // legacy completions
      const delta = choice['delta'];
      if (isObject(delta)) this.observeMessage(c, delta);
    }
  }

  /** Observes a complete non-streaming body whose usage was missing or unreadable. */
  observeBody(body: unknown): void {
    if (!isObject(body)) return;
    if (Array.isArray(body['choices'])) {
      for (const choice of body['choices']) {
        if (!isObject(choice)) continue;
        const c = index(choice['index']);
        this.add(`${c}:text`, choice['text']);
        if (isObject(choice['message'])) this.observeMessage(c, choice['message']);
      }
    }
    if (Array.isArray(body['output'])) {
      body['output'].forEach((item, i) => {
        if (!isObject(item)) return;
        this.add(`o${i}:name`, item['name']);
        this.add(`o${i}:args`, item['arguments']);
        if (Array.isArray(item['content'])) {
          for (const part of item['content']) {
            if (isObject(part)) this.add(`o${i}:text`, part['text'] ?? part['refusal']);
          }
        }
      });
    }
  }

  private observeMessage(c: string, message: Obj): void {
    this.add(`${c}:content`, message['content']);
    this.add(`${c}:refusal`, message['refusal']);
    const calls = message['tool_calls'];
    if (Array.isArray(calls)) {
      calls.forEach((call, i) => {
        if (!isObject(call) || !isObject(call['function'])) return;
        // Streamed tool calls carry their own index; complete messages are in array order.
        const t = call['index'] === undefined ? String(i) : index(call['index']);
        this.add(`${c}:tool${t}:name`, call['function']['name']);
        this.add(`${c}:tool${t}:args`, call['function']['arguments']);
      });
    }
    const legacy = message['function_call'];
    if (isObject(legacy)) {
      this.add(`${c}:fn:name`, legacy['name']);
      this.add(`${c}:fn:args`, legacy['arguments']);
    }
  }

  private observeResponsesEvent(type: string, data: Obj): void {
    const o = index(data['output_index']);
    switch (type) {
      case 'response.output_text.delta':
      case 'response.refusal.delta':
        this.add(`o${o}:c${index(data['content_index'])}`, data['delta']);
        break;
      case 'response.function_call_arguments.delta':
        this.add(`o${o}:args`, data['delta']);
        break;
      case 'response.output_item.added': {
        const item = data['item'];
        if (isObject(item) && item['type'] === 'function_call')
          this.add(`o${o}:name`, item['name']);
        break;
      }
    }
  }

  private add(key: string, text: unknown): void {
    if (typeof text !== 'string' || text.length === 0) return;
    let counter = this.counters.get(key);
    if (!counter) {
      if (this.counters.size >= MAX_COUNTERS) {
        this.overflow ??= new TokenCounter(this.model);
        counter = this.overflow;
      } else {
        counter = new TokenCounter(this.model);
        this.counters.set(key, counter);
      }
    }
    counter.add(text);
  }
}
