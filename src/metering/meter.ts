/**
 * Per-response metering, the heart of "no token is lost" (DESIGN 1.6). The caller feeds the
 * response body as it passes and finally asks for the Usage to charge:
 * - provider usage when the body reported it (JSON `usage`, the chat/completions usage chunk,
 *   a Responses terminal event) — even if the client aborted after it passed;
 * - otherwise an estimate: the prompt plus the output streamed so far, both counted with the
 *   model's tokenizer (the prompt through `countPrompt`), marked `estimated`.
 * When we injected `include_usage`, the usage-only chunk is removed from what the client sees.
 */
import type { Endpoint } from '../request/endpoint.js';
import { BodyDecoder, decoderKind } from './decode.js';
import { OutputTally } from './output-tally.js';
import { SseParser, type SseEvent } from './sse.js';
import { parseEventData, usageFromEventData, usageFromJson, type Usage } from './usage.js';

export interface MeterOptions {
  endpoint: Endpoint;
  /** The request's model (the tokenizer family for estimates). */
  model: string;
  /** The request asked for an SSE stream. */
  stream: boolean;
  /** From rewriteRequest: false when the usage chunk is ours and must be removed. */
  clientWantsUsage: boolean;
  /** Prompt tokens estimated at admission; charged as input when no usage arrives… */
  promptEstimate: number;
  /**
   * …unless this is given: it counts the prompt (with the tokenizer), and is called only
   * when no usage arrived, so a response with usage never pays for it.
   */
  countPrompt?: () => number;
  /** The response's content-encoding header; compressed bodies are observed, never rewritten. */
  contentEncoding?: string;
  /**
   * The output a background request may produce out of sight (estimate.ts backgroundOutput):
   * without usage, at least this much output is charged, whatever passed by.
   */
  backgroundOutput?: number;
}

/** Largest non-streaming body buffered for parsing; beyond it the meter estimates instead. */
const MAX_JSON_BYTES = 64 * 1024 * 1024;

type Obj = Record<string, unknown>;

function isObject(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The usage chunk that `include_usage` adds: no choices, usage set (openai.md §5). */
function isUsageOnlyChunk(data: unknown): boolean {
  return (
    isObject(data) &&
    Array.isArray(data['choices']) &&
    data['choices'].length === 0 &&
    isObject(data['usage'])
  );
}

/** The input to charge without usage: `countPrompt()`, else the admission estimate. */
export function promptTokens(opts: Pick<MeterOptions, 'promptEstimate' | 'countPrompt'>): number {
  let n = opts.promptEstimate;
  try {
    if (opts.countPrompt) n = opts.countPrompt();
  } catch {
    // Never fails a settlement: fall back to the admission estimate.
  }
  return Math.max(0, Math.ceil(n) || 0);
}

export class ResponseMeter {
  private readonly opts: MeterOptions;
  private readonly tally: OutputTally;
  private readonly parser: SseParser | undefined;
  private readonly decoder: BodyDecoder | undefined;
  /** The body is compressed with an encoding we cannot read: only the prompt is estimated. */
  private readonly opaque: boolean;
  private readonly strip: boolean;
  private json: Buffer[] = [];
  private jsonBytes = 0;
  private provider: Usage | undefined;
  private ended = false;
  private result: Usage | undefined;

  constructor(opts: MeterOptions) {
    this.opts = opts;
    this.tally = new OutputTally(opts.model);
    this.parser = opts.stream ? new SseParser() : undefined;
    const kind = decoderKind(opts.contentEncoding);
    this.opaque = kind === 'unsupported';
    this.decoder =
      kind === 'identity' || kind === 'unsupported'
        ? undefined
        : new BodyDecoder(kind, (b) => this.observe(b));
    // Only an identity-encoded stream can be edited; the lead keeps accept-encoding off
    // streams that need it. A compressed one keeps the chunk: harmless, SDK types allow it.
    this.strip =
      opts.stream &&
      !opts.clientWantsUsage &&
      kind === 'identity' &&
      (opts.endpoint === 'chat' || opts.endpoint === 'completions');
  }

  /**
   * Feeds the next piece of the response body. Resolves to the bytes to forward in its place,
   * or undefined to forward the chunk unchanged. While stripping, bytes of an incomplete
   * event are held back and released with the chunk that completes it.
   */
  async push(chunk: Buffer, endOfStream: boolean): Promise<Buffer | undefined> {
    if (this.ended || this.result) return undefined;
    if (endOfStream) this.ended = true;
    if (this.strip && this.parser) return this.pushStripping(chunk, endOfStream);
    try {
      if (this.decoder) {
        await this.decoder.write(chunk);
        if (endOfStream) await this.decoder.end();
      } else if (!this.opaque) this.observe(chunk);
      if (endOfStream) this.endObserved();
    } catch {
      // Metering never breaks the response; a failure here just means an estimate.
    }
    return undefined;
  }

  /** The usage to charge. Idempotent: later calls return the same object. */
  finish(outcome: 'complete' | 'aborted'): Usage {
    if (this.result) return this.result;
    if (outcome === 'complete' && !this.ended) this.endObserved();
    this.decoder?.destroy();
    if (this.provider) this.result = this.provider;
    else {
      let output: number;
      try {
        output = this.tally.tokens;
      } catch {
        output = 0;
      }
      output = Math.max(output, this.opts.backgroundOutput ?? 0);
      const input = promptTokens(this.opts);
      this.result = {
        inputTokens: input,
        outputTokens: output,
        totalTokens: input + output,
        source: 'estimated',
      };
    }
    this.json = [];
    return this.result;
  }

  private pushStripping(chunk: Buffer, endOfStream: boolean): Buffer | undefined {
    const parser = this.parser as SseParser;
    const heldBefore = parser.pendingBytes;
    const events = parser.push(chunk);
    if (endOfStream) events.push(...parser.end());
    const kept: Buffer[] = [];
    let dropped = false;
    for (const event of events) {
      if (this.observeEvent(event)) dropped = true;
      else kept.push(event.raw);
    }
    // Event boundaries matched chunk boundaries and nothing was removed: forward as is.
    if (!dropped && heldBefore === 0 && parser.pendingBytes === 0) return undefined;
    return Buffer.concat(kept);
  }

  /** Observes decoded body bytes (identity bodies, or the decoder's output). */
  private observe(bytes: Buffer): void {
    if (this.parser) {
      for (const event of this.parser.push(bytes)) this.observeEvent(event);
      return;
    }
    if (this.jsonBytes + bytes.length > MAX_JSON_BYTES) {
      this.jsonBytes = Infinity; // too big to parse: estimate from the prompt only
      this.json = [];
      return;
    }
    this.jsonBytes += bytes.length;
    this.json.push(bytes);
  }

  /** The body is complete: flush the parser, or parse the buffered JSON body. */
  private endObserved(): void {
    this.ended = true;
    if (this.parser) {
      // While stripping, bytes still held here can no longer be forwarded (the caller ended
      // without endOfStream); they are still read, so a usage event among them counts.
      for (const event of this.parser.end()) this.observeEvent(event);
      return;
    }
    if (this.json.length === 0) return;
    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(this.json).toString('utf8')) as unknown;
    } catch {
      return;
    } finally {
      this.json = [];
    }
    const usage = usageFromJson(body);
    if (usage) this.provider = usage;
    else this.tally.observeBody(body);
  }

  /** Reads usage and output text from one event; true when it is the chunk to remove. */
  private observeEvent(event: SseEvent): boolean {
    const data = parseEventData(event);
    if (data === undefined) return false;
    const usage = usageFromEventData(data, event.event);
    if (usage) this.provider = usage;
    if (!this.provider) this.tally.observeEvent(data, event.event);
    return this.strip && isUsageOnlyChunk(data);
  }
}
