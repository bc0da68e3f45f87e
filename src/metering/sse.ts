/**
 * Incremental server-sent-events parser (WHATWG "event stream" interpretation), built for a
 * proxy: Envoy hands us arbitrary byte slices, and we must be able to forward or drop whole
 * events byte-exactly. Every input byte ends up in exactly one event's `raw`, so concatenating
 * the `raw` of everything `push()` and `end()` return reproduces the input.
 */

/** One block of the stream: the lines up to and including the blank line that ends them. */
export interface SseEvent {
  /** Value of the last `event:` field, when any. */
  event?: string;
  /** `data:` lines joined with `\n` (one optional space after the colon stripped); '' when none. */
  data: string;
  /** The exact bytes of the block, including its terminating blank line. */
  raw: Buffer;
}

const LF = 0x0a;
const CR = 0x0d;

/**
 * Feed chunks with `push`; each call returns the blocks completed by that chunk. Lines are
 * decoded only once complete, so a UTF-8 character split across chunks is never mangled.
 * Every byte is visited once and every block concatenated once: linear in the input.
 *
 * Blocks without data (a keep-alive comment, a stray blank line) are returned too, with
 * `data: ''`, because their bytes must reach the client. `end()` returns an unterminated final
 * block as an event — unlike a browser, which discards it — so no byte is lost and a final
 * usage event missing its blank line still counts.
 */
export class SseParser {
  /** Raw bytes of the current block that arrived in earlier chunks. */
  private blockParts: Buffer[] = [];
  /** Bytes of the current line (without terminator) that arrived in earlier chunks. */
  private lineParts: Buffer[] = [];
  /** Whether the current line has any byte (decides "blank line"). */
  private lineHasBytes = false;
  /** The previous byte was CR: a following LF belongs to the same terminator. */
  private afterCr = false;
  /** A blank line ended with CR; dispatch waits for the next byte to see whether LF follows. */
  private dispatchAfterCr = false;
  private firstLine = true;
  private eventType: string | undefined;
  private dataLines: string[] = [];
  private blockBytes = 0;

  /** Bytes held back in an incomplete block (to be returned by a later push or by end()). */
  get pendingBytes(): number {
    return this.blockBytes;
  }

  push(chunk: Buffer | Uint8Array): SseEvent[] {
    const buf = Buffer.isBuffer(chunk)
      ? chunk
      : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const out: SseEvent[] = [];
    let blockStart = 0;
    let lineStart = 0;
    for (let i = 0; i < buf.length; i++) {
      const b = buf[i];
      if (this.afterCr) {
        this.afterCr = false;
        if (b === LF) {
          lineStart = i + 1;
          if (this.dispatchAfterCr) {
            this.dispatchAfterCr = false;
            out.push(this.dispatch(buf.subarray(blockStart, i + 1)));
            blockStart = i + 1;
          }
          continue;
        }
        if (this.dispatchAfterCr) {
          this.dispatchAfterCr = false;
          out.push(this.dispatch(buf.subarray(blockStart, i)));
          blockStart = i;
        }
      }
      if (b !== LF && b !== CR) {
        this.lineHasBytes = true;
        continue;
      }
      const blank = !this.lineHasBytes;
      if (!blank) this.processLine(this.takeLine(buf.subarray(lineStart, i)));
      this.lineHasBytes = false;
      lineStart = i + 1;
      if (b === CR) {
        this.afterCr = true;
        this.dispatchAfterCr = blank;
      } else if (blank) {
        out.push(this.dispatch(buf.subarray(blockStart, i + 1)));
        blockStart = i + 1;
      }
    }
    if (lineStart < buf.length) this.lineParts.push(buf.subarray(lineStart));
    if (blockStart < buf.length) {
      this.blockParts.push(buf.subarray(blockStart));
      this.blockBytes += buf.length - blockStart;
    }
    return out;
  }

  /** The stream ended: returns the block still pending (terminated or not), if any. */
  end(): SseEvent[] {
    if (this.lineHasBytes) this.processLine(this.takeLine(Buffer.alloc(0)));
    this.lineHasBytes = false;
    this.afterCr = false;
    this.dispatchAfterCr = false;
    if (this.blockBytes === 0) return [];
    return [this.dispatch(Buffer.alloc(0))];
  }

  private takeLine(tail: Buffer): string {
    let bytes = tail;
    if (this.lineParts.length > 0) {
      this.lineParts.push(tail);
      bytes = Buffer.concat(this.lineParts);
      this.lineParts = [];
    }
    let line = bytes.toString('utf8');
    // The spec strips one leading byte-order mark from the whole stream.
    if (this.firstLine && line.charCodeAt(0) === 0xfeff) line = line.slice(1);
    this.firstLine = false;
    return line;
  }

  private processLine(line: string): void {
    if (line.startsWith(':')) return; // comment
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.dataLines.push(value);
    else if (field === 'event') this.eventType = value;
    // `id` and `retry` only matter to reconnecting browsers; unknown fields are ignored.
  }

  private dispatch(tail: Buffer): SseEvent {
    let raw: Buffer;
    if (this.blockParts.length === 0) raw = Buffer.from(tail);
    else {
      this.blockParts.push(tail);
      raw = Buffer.concat(this.blockParts);
    }
    const event: SseEvent = { data: this.dataLines.join('\n'), raw };
    if (this.eventType !== undefined) event.event = this.eventType;
    this.blockParts = [];
    this.blockBytes = 0;
    this.dataLines = [];
    this.eventType = undefined;
    return event;
  }
}
