/**
 * Token counting with the model family's real BPE (openai.md §7), from js-tiktoken's rank
 * tables through our compact counter (bpe.ts).
 *
 * Costs that shape this file:
 * - Building a rank table takes a while (about 150 ms for o200k_base on a slow core) and
 *   about 15 MiB, so each encoding is built once, on first use, never per request. Nothing
 *   counts on the Check path any more (admission estimates by bytes, see estimate.ts), so a
 *   sidecar whose responses always carry usage never builds one.
 * - The merge step is worse than quadratic in the length of one pre-tokenized piece, so a
 *   long run without whitespace ("AAAA…", minified data) could stall the event loop for
 *   seconds. `TokenCounter` therefore cuts text into batches at spaces and line breaks
 *   (where the count is unchanged) and forces a cut inside any run longer than `RUN_MAX`
 *   characters. A forced cut can add about one token, a small overcount that is acceptable
 *   for an estimate (and errs towards charging, not losing, tokens).
 * - Even ordinary text runs at a few MB/s, so callers on a deadline count a bounded prefix
 *   exactly and extrapolate the rest (`BudgetedCounter`), and `TokenCounter` holds finished
 *   batches back until they add up to `HOLD_CHARS`: a streamed answer whose usage arrives at
 *   its end (almost all) is then never tokenized at all.
 */
import { BpeCounter, loadBpe, type EncodingName } from './bpe.js';

export type { EncodingName } from './bpe.js';

/** Model-name prefixes, matched longest first (`gpt-4o…` also starts with `gpt-4`). */
const PREFIXES: ReadonlyArray<readonly [string, EncodingName]> = (
  [
    ['gpt-4o', 'o200k_base'],
    ['chatgpt-4o', 'o200k_base'],
    ['gpt-4.1', 'o200k_base'],
    ['gpt-4.5', 'o200k_base'],
    ['gpt-5', 'o200k_base'],
    ['o1', 'o200k_base'],
    ['o3', 'o200k_base'],
    ['o4-mini', 'o200k_base'],
    // o200k_harmony = o200k_base plus chat-format special tokens; plain text counts the same.
    ['gpt-oss', 'o200k_base'],
    ['gpt-4', 'cl100k_base'],
    ['gpt-3.5-turbo', 'cl100k_base'],
    ['gpt-35-turbo', 'cl100k_base'], // Azure's spelling
    ['text-embedding-ada-002', 'cl100k_base'],
    ['text-embedding-3-small', 'cl100k_base'],
    ['text-embedding-3-large', 'cl100k_base'],
    ['davinci-002', 'cl100k_base'],
    ['babbage-002', 'cl100k_base'],
  ] as Array<readonly [string, EncodingName]>
).sort((a, b) => b[0].length - a[0].length);

/**
 * The encoding of a model. Fine-tunes (`ft:gpt-4o-mini:org::id`) use their base model's;
 * a routing prefix (`openai/gpt-4o`) is ignored. Unknown models fall back to `o200k_base`
 * (our choice, not an OpenAI rule: it is the encoding of every current model).
 */
export function encodingForModel(model: string): EncodingName {
  let name = model.trim().toLowerCase();
  if (name.startsWith('ft:')) name = name.slice(3).split(':')[0] ?? '';
  const slash = name.lastIndexOf('/');
  if (slash >= 0) name = name.slice(slash + 1);
  for (const [prefix, encoding] of PREFIXES) {
    if (name.startsWith(prefix)) return encoding;
  }
  return 'o200k_base';
}

const encoders = new Map<EncodingName, BpeCounter>();

function encoder(name: EncodingName): BpeCounter {
  let enc = encoders.get(name);
  if (!enc) {
    enc = loadBpe(name);
    encoders.set(name, enc);
  }
  return enc;
}

/** Batches aim for this many characters; cuts happen at the next space after a word. */
const BATCH_CHARS = 1024;
/** Finished batches held uncounted until they add up to this (see the file comment). */
const HOLD_CHARS = 16 * 1024;
/** Longest run (whitespace or not) encoded in one piece; see the file comment. */
const RUN_MAX = 32;
/** Characters counted exactly per counter by default; beyond, the observed ratio is used. */
const EXACT_CHARS = 1 << 20;
/** Tokens per character assumed before anything was counted (about 4 characters a token). */
const DEFAULT_RATIO = 0.25;

function isWhitespace(c: number): boolean {
  return (
    (c >= 9 && c <= 13) ||
    c === 32 ||
    c === 0x85 ||
    c === 0xa0 ||
    c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000 ||
    c === 0xfeff
  );
}

/**
 * Counts tokens of text that arrives in pieces, in bounded memory: the unfinished batch (at
 * most about `4 × BATCH_CHARS` characters) and finished ones up to `HOLD_CHARS` are kept,
 * beyond that finished batches are reduced to a number. Cutting before a space that follows a word matches how the BPE pre-tokenizer
 * splits text (a space starts the next piece), so batching does not change the count of
 * ordinary text.
 */
export class TokenCounter {
  private readonly encoding: EncodingName;
  private held: string[] = [];
  private heldChars = 0;
  private pending = '';
  private batchStart = 0;
  private runLength = 0;
  private prevWhitespace = false;
  private prevCode = 0;
  private exactTokens = 0;
  private exactChars = 0;
  private extraChars = 0;
  private readonly maxExactChars: number;

  /**
   * `maxExactChars` bounds the CPU spent: text beyond it is not tokenized but counted at the
   * tokens-per-character ratio observed so far.
   */
  constructor(model: string, maxExactChars: number = EXACT_CHARS) {
    this.encoding = encodingForModel(model);
    this.maxExactChars = maxExactChars;
  }

  add(text: string): this {
    if (text.length === 0) return this;
    const base = this.pending.length;
    this.pending += text;
    // Only the new text is scanned; `pending` is sliced once per batch, so the work per
    // character stays constant however small the streamed deltas are.
    for (let j = 0; j < text.length; j++) {
      const i = base + j;
      const c = text.charCodeAt(j);
      const ws = isWhitespace(c);
      const sameRun = this.runLength > 0 && ws === this.prevWhitespace;
      if (i > this.batchStart) {
        const size = i - this.batchStart;
        // Exact cut points, once a batch is big enough: a space after a non-space always
        // starts a new BPE piece (" word"), and so does a non-space after a line break. Not
        // a newline itself: o200k keeps punctuation and the newline after it together.
        const natural =
          size >= BATCH_CHARS &&
          ((c === 32 && !this.prevWhitespace) ||
            (!ws && (this.prevCode === 10 || this.prevCode === 13)));
        // Text without spaces or line breaks (tab-separated, CJK…) still gets cut, at any
        // whitespace boundary, so the batch held in memory stays bounded.
        const overflow = size >= 4 * BATCH_CHARS && this.runLength > 0 && !sameRun;
        // Never split a surrogate pair: a low surrogate stays with its high half.
        const forced = sameRun && this.runLength >= RUN_MAX && !(c >= 0xdc00 && c <= 0xdfff);
        if (natural || overflow || forced) {
          this.hold(this.pending.slice(this.batchStart, i));
          this.batchStart = i;
          this.runLength = 0;
        }
      }
      this.runLength = sameRun ? this.runLength + 1 : 1;
      this.prevWhitespace = ws;
      this.prevCode = c;
    }
    if (this.batchStart > 0) {
      this.pending = this.pending.slice(this.batchStart);
      this.batchStart = 0;
    }
    return this;
  }

  /** Tokens of everything added so far. */
  get tokens(): number {
    this.flush();
    const tail = this.pending.length === 0 ? 0 : this.encodeLength(this.pending);
    if (this.extraChars === 0) return this.exactTokens + tail;
    const ratio = this.exactChars === 0 ? DEFAULT_RATIO : this.exactTokens / this.exactChars;
    return this.exactTokens + tail + Math.ceil(this.extraChars * ratio);
  }

  private hold(batch: string): void {
    this.held.push(batch);
    this.heldChars += batch.length;
    if (this.heldChars >= HOLD_CHARS) this.flush();
  }

  /** Counts the held batches, in order, so the exact-characters allowance applies as before. */
  private flush(): void {
    if (this.held.length === 0) return;
    const batches = this.held;
    this.held = [];
    this.heldChars = 0;
    for (const batch of batches) this.count(batch);
  }

  private count(batch: string): void {
    if (this.exactChars >= this.maxExactChars) {
      this.extraChars += batch.length;
      return;
    }
    this.exactTokens += this.encodeLength(batch);
    this.exactChars += batch.length;
  }

  private encodeLength(text: string): number {
    // Built on first use (special-token strings in user text count as ordinary text).
    return encoder(this.encoding).count(text);
  }
}

/** Tokens of `text` with the tokenizer of `model`'s family. */
export function countTokens(text: string, model: string): number {
  if (text.length === 0) return 0;
  return new TokenCounter(model).add(text).tokens;
}

/**
 * Counts many separate texts (the fields of one request) against one shared allowance of
 * exactly tokenized characters. js-tiktoken manages roughly a megabyte of text per second,
 * and the prompt estimate runs inside ext_authz's deadline, so a huge prompt is tokenized up
 * to the allowance and the rest is extrapolated with the ratio measured on what was counted.
 */
export class BudgetedCounter {
  private readonly model: string;
  private remaining: number;
  private exactTokens = 0;
  private exactChars = 0;

  constructor(model: string, exactChars: number) {
    this.model = model;
    this.remaining = Math.max(0, exactChars);
  }

  count(text: string): number {
    if (text.length === 0) return 0;
    const exactPart = text.length <= this.remaining ? text : text.slice(0, this.remaining);
    let tokens = 0;
    if (exactPart.length > 0) {
      tokens = new TokenCounter(this.model).add(exactPart).tokens;
      this.exactTokens += tokens;
      this.exactChars += exactPart.length;
      this.remaining -= exactPart.length;
    }
    const rest = text.length - exactPart.length;
    if (rest === 0) return tokens;
    const ratio = this.exactChars === 0 ? DEFAULT_RATIO : this.exactTokens / this.exactChars;
    return tokens + Math.ceil(rest * ratio);
  }
}
