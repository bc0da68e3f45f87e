/**
 * Token counts for OpenAI's byte-level BPE encodings, from the rank tables js-tiktoken ships.
 * Counts only: no token ids, no decoding, no special tokens (user text that spells
 * `<|endoftext|>` is ordinary text, as we always asked js-tiktoken to treat it).
 *
 * Why not js-tiktoken's own encoder: it keeps every rank twice (a Map keyed by comma-joined
 * byte lists, plus a decoding Map of 200,000 Uint8Arrays), about 150 MiB resident and over a
 * second of blocked event loop to build for o200k_base. Here one Map keyed by the token's
 * bytes as a Latin-1 string: about 15 MiB, built in a fraction of that time
 * (bench/OPTIMISATIONS.md). The counts are the same by construction: the text is split with
 * the encoding's own pattern, and each piece is merged with tiktoken's rule (repeatedly join
 * the adjacent pair whose bytes form the lowest-ranked token, the leftmost on a tie, until no
 * adjacent pair is a token). test/unit/metering/bpe.test.ts compares with js-tiktoken.
 */
import { createRequire } from 'node:module';
import type { TiktokenBPE } from 'js-tiktoken/lite';

export type EncodingName = 'o200k_base' | 'cl100k_base';

/** A piece's UTF-8 bytes, one character per byte (0–255), so it can key a Map cheaply. */
export function utf8Bytes(text: string): string {
  let ascii = true;
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) > 0x7f) {
      ascii = false;
      break;
    }
  }
  if (ascii) return text;
  // Buffer's encoder replaces lone surrogates with U+FFFD, as TextEncoder (js-tiktoken) does.
  return Buffer.from(text, 'utf8').toString('latin1');
}

export class BpeCounter {
  private readonly ranks: Map<string, number>;
  private readonly pattern: RegExp;

  constructor(table: TiktokenBPE) {
    this.pattern = new RegExp(table.pat_str, 'gu');
    this.ranks = new Map();
    // Lines of "<prefix> <first rank> <base64 token> <base64 token> …", ranks consecutive.
    for (const line of table.bpe_ranks.split('\n')) {
      const fields = line.split(' ');
      if (fields.length < 3) continue;
      let rank = Number.parseInt(fields[1] ?? '', 10);
      // atob gives exactly the one-character-per-byte string the Map is keyed by.
      for (let i = 2; i < fields.length; i++) this.ranks.set(atob(fields[i] ?? ''), rank++);
    }
  }

  /** Tokens of `text`. */
  count(text: string): number {
    const pattern = this.pattern;
    pattern.lastIndex = 0;
    let n = 0;
    for (let m = pattern.exec(text); m !== null; m = pattern.exec(text)) {
      const piece = m[0];
      if (piece.length === 0) {
        // Cannot happen with OpenAI's patterns; step over it as String.matchAll would.
        pattern.lastIndex += (text.codePointAt(pattern.lastIndex) ?? 0) > 0xffff ? 2 : 1;
        continue;
      }
      n += this.countPiece(utf8Bytes(piece));
    }
    return n;
  }

  private countPiece(bytes: string): number {
    // Every single byte is a token of a byte-level encoding; most words are one token.
    if (bytes.length <= 1 || this.ranks.has(bytes)) return Math.min(bytes.length, 1);
    // starts[k] is where part k begins (the last entry is the end); pair[k] is the rank of
    // parts k and k+1 joined, Infinity when that is no token.
    const starts: number[] = [];
    for (let i = 0; i <= bytes.length; i++) starts.push(i);
    const pair: number[] = [];
    for (let k = 0; k + 1 < bytes.length; k++) pair.push(this.rankOf(bytes, k, k + 2));
    for (;;) {
      let at = -1;
      let best = Infinity;
      for (let k = 0; k < pair.length; k++) {
        const r = pair[k] as number;
        if (r < best) {
          best = r;
          at = k;
        }
      }
      if (at < 0) break;
      // Join parts at and at+1; only the pairs touching the joined part change.
      starts.splice(at + 1, 1);
      pair.splice(at, 1);
      if (at < pair.length)
        pair[at] = this.rankOf(bytes, starts[at] as number, starts[at + 2] as number);
      if (at > 0)
        pair[at - 1] = this.rankOf(bytes, starts[at - 1] as number, starts[at + 1] as number);
    }
    return starts.length - 1;
  }

  private rankOf(bytes: string, start: number, end: number): number {
    return this.ranks.get(bytes.slice(start, end)) ?? Infinity;
  }
}

const requireCjs = createRequire(import.meta.url);

/**
 * Reads an encoding's rank table (synchronous: counting is) and builds its counter. The
 * table's module is dropped from the require cache afterwards: its multi-megabyte source
 * string is not needed once the Map is built.
 */
export function loadBpe(name: EncodingName): BpeCounter {
  const id = requireCjs.resolve(`js-tiktoken/ranks/${name}`);
  try {
    return new BpeCounter(requireCjs(id) as TiktokenBPE);
  } finally {
    delete requireCjs.cache[id];
  }
}
