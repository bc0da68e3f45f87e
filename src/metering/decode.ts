/**
 * The one owner of content-encoding (gzip, deflate, br) for response bodies:
 * - BodyDecoder decodes a body incrementally, so the meter can read usage from bodies it must
 *   not modify (and the exchange can edit an SSE stream). One zlib stream per response is fed
 *   chunk by chunk and flushed after each, so everything decodable so far has been observed
 *   when `write` resolves; nothing is ever re-decompressed.
 * - decodeWhole / encodeWhole do a whole, small, bounded body at once (the model list).
 */
import zlib from 'node:zlib';

type Kind = 'gzip' | 'deflate' | 'br';
/** Every zlib / brotli decompressor offers flush(kind, callback). */
type Transform = zlib.Gunzip | zlib.Inflate | zlib.InflateRaw | zlib.BrotliDecompress;

/** The encoding a body decoder handles, 'identity' for none, or 'unsupported'. */
export function decoderKind(
  contentEncoding: string | undefined,
): Kind | 'identity' | 'unsupported' {
  const value = (contentEncoding ?? '').trim().toLowerCase();
  if (value === '' || value === 'identity') return 'identity';
  if (value === 'gzip' || value === 'x-gzip') return 'gzip';
  if (value === 'deflate') return 'deflate';
  if (value === 'br') return 'br';
  return 'unsupported'; // zstd, stacked encodings ("gzip, br"), …
}

export class BodyDecoder {
  private stream: Transform | undefined;
  /** `deflate` waits for two bytes to tell a zlib header from raw deflate. */
  private head: Buffer | undefined;
  private error: Error | undefined;
  private ended = false;

  private readonly kind: Kind;
  private readonly onData: (decoded: Buffer) => void;

  /** `onData` receives decoded bytes as they are produced (never all at once at the end). */
  constructor(kind: Kind, onData: (decoded: Buffer) => void) {
    this.kind = kind;
    this.onData = onData;
  }

  /** True once the compressed data proved corrupt; later input is ignored. */
  get failed(): boolean {
    return this.error !== undefined;
  }

  async write(chunk: Buffer): Promise<void> {
    if (this.error || this.ended || chunk.length === 0) return;
    const stream = this.open(chunk);
    if (!stream) return;
    const data = this.head ?? chunk;
    this.head = undefined;
    stream.write(data);
    await this.settle(stream, (done) =>
      stream.flush(
        this.kind === 'br' ? zlib.constants.BROTLI_OPERATION_FLUSH : zlib.constants.Z_SYNC_FLUSH,
        done,
      ),
    );
  }

  /** Ends the input and waits for the remaining output. A truncated body just stops early. */
  async end(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    if (this.error) return;
    if (!this.stream && this.head) {
      const stream = this.open(Buffer.alloc(0), true);
      if (stream) stream.write(this.head);
      this.head = undefined;
    }
    const stream = this.stream;
    if (!stream) return;
    await this.settle(stream, (done) => {
      stream.once('end', done);
      stream.end();
    });
  }

  destroy(): void {
    this.ended = true;
    this.stream?.destroy();
  }

  private open(chunk: Buffer, force = false): Transform | undefined {
    if (this.stream) return this.stream;
    if (this.kind === 'deflate') {
      this.head = this.head ? Buffer.concat([this.head, chunk]) : chunk;
      if (this.head.length < 2 && !force) return undefined;
    }
    let stream: Transform;
    if (this.kind === 'gzip') stream = zlib.createGunzip();
    else if (this.kind === 'br') stream = zlib.createBrotliDecompress();
    else {
      // "deflate" should be zlib-wrapped (RFC 9110) but some servers send raw deflate.
      const b0 = this.head?.[0] ?? 0;
      const b1 = this.head?.[1] ?? 0;
      const zlibHeader = (b0 & 0x0f) === 8 && ((b0 << 8) | b1) % 31 === 0;
      stream = zlibHeader ? zlib.createInflate() : zlib.createInflateRaw();
    }
    stream.on('data', (decoded: Buffer) => {
      try {
        this.onData(decoded);
      } catch {
        // The observer never breaks decoding.
      }
    });
    stream.on('error', (err: Error) => {
      this.error = err;
    });
    this.stream = stream;
    return stream;
  }

  /** Runs `start(done)` and resolves when done is called or the stream fails, whichever first. */
  private settle(stream: Transform, start: (done: () => void) => void): Promise<void> {
    return new Promise((resolve) => {
      const finish = (): void => {
        stream.off('error', finish);
        stream.off('close', finish);
        resolve();
      };
      stream.once('error', finish);
      stream.once('close', finish);
      try {
        start(finish);
      } catch {
        finish();
      }
    });
  }
}

/** Decompresses a whole body of at most `maxBytes` decoded; undefined when it cannot be read. */
export function decodeWhole(body: Buffer, kind: Kind | 'identity', maxBytes: number): Buffer | undefined {
  const limits = { maxOutputLength: maxBytes };
  try {
    if (kind === 'gzip') return zlib.gunzipSync(body, limits);
    if (kind === 'br') return zlib.brotliDecompressSync(body, limits);
    if (kind === 'deflate') {
      try {
        return zlib.inflateSync(body, limits);
      } catch {
        return zlib.inflateRawSync(body, limits); // servers that send raw deflate
      }
    }
    return body;
  } catch {
    return undefined;
  }
}

/** Compresses a whole body in `kind`, so headers naming the encoding stay true after an edit. */
export function encodeWhole(plain: Buffer, kind: Kind | 'identity'): Buffer {
  if (kind === 'gzip') return zlib.gzipSync(plain);
  if (kind === 'br') return zlib.brotliCompressSync(plain);
  if (kind === 'deflate') return zlib.deflateSync(plain); // zlib-wrapped, as RFC 9110 says
  return plain;
}
