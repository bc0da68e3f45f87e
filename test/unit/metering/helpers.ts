/** Shared helpers for the metering unit tests: fixtures and random chunking. */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';

export const FIXTURES = [
  'chat-with-usage.sse',
  'chat-without-usage.sse',
  'chat-crlf.sse',
  'chat-comments.sse',
  'chat-tool-calls.sse',
  'completions-with-usage.sse',
  'responses.sse',
] as const;

export function fixture(name: string): Buffer {
  return readFileSync(new URL(`../../fixtures/streams/${name}`, import.meta.url));
}

/** Splits `buf` at the given (sorted, unique) offsets. */
export function splitAt(buf: Buffer, cuts: readonly number[]): Buffer[] {
  const out: Buffer[] = [];
  let prev = 0;
  for (const cut of cuts) {
    out.push(buf.subarray(prev, cut));
    prev = cut;
  }
  out.push(buf.subarray(prev));
  return out;
}

/** Sorted unique cut offsets strictly inside a buffer of `length` bytes. */
export function cutsArb(length: number, maxCuts = 40): fc.Arbitrary<number[]> {
  if (length < 2) return fc.constant([]);
  return fc
    .uniqueArray(fc.integer({ min: 1, max: length - 1 }), { maxLength: maxCuts })
    .map((cuts) => [...cuts].sort((a, b) => a - b));
}
