/**
 * Our compact BPE counter against js-tiktoken itself (the reference whose rank tables it
 * reads): the counts must be equal for any text, in both encodings.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { createRequire } from 'node:module';
import { Tiktoken, type TiktokenBPE } from 'js-tiktoken/lite';
import { loadBpe, utf8Bytes, type EncodingName } from '../../../src/metering/bpe.js';

const requireCjs = createRequire(import.meta.url);
const NAMES: readonly EncodingName[] = ['o200k_base', 'cl100k_base'];
const reference = Object.fromEntries(
  NAMES.map((name) => [name, new Tiktoken(requireCjs(`js-tiktoken/ranks/${name}`) as TiktokenBPE)]),
) as Record<EncodingName, Tiktoken>;
const ours = Object.fromEntries(NAMES.map((name) => [name, loadBpe(name)])) as Record<
  EncodingName,
  ReturnType<typeof loadBpe>
>;

/** Text that looks like prompts: words, numbers, punctuation, whitespace runs, CJK, emoji. */
const wordy = fc
  .array(
    fc.oneof(
      fc.constantFrom(
        'the',
        'The',
        ' cat',
        "'s",
        "'LL",
        'naïve',
        'Über',
        '東京',
        'は',
        '😀',
        '👩‍💻',
        '—',
        '...',
        '\n',
        '\r\n',
        '\t',
        '   ',
        ' ',
        '1234567',
        '3.14',
        '{"a":1}',
        '<|endoftext|>',
        'AAAAAAAAAAAAAAAAAAAAAAAA',
      ),
      fc.string({ maxLength: 8 }),
      fc.string({ unit: 'grapheme', maxLength: 6 }),
    ),
    { maxLength: 40 },
  )
  .map((parts) => parts.join(''));

describe('metering/bpe', () => {
  for (const name of NAMES) {
    it(`counts exactly like js-tiktoken (${name}) for any text`, () => {
      const ref = reference[name];
      const mine = ours[name];
      fc.assert(
        fc.property(fc.oneof(wordy, fc.string({ unit: 'binary', maxLength: 40 })), (text) => {
          expect(mine.count(text), JSON.stringify(text)).to.equal(ref.encode(text, [], []).length);
        }),
        { numRuns: 400 },
      );
    });
  }

  it('treats special-token spellings and lone surrogates as ordinary text', () => {
    for (const name of NAMES) {
      for (const text of ['a <|endoftext|> b', '<|im_start|>user', 'x\ud800y', '\udfff', '']) {
        expect(ours[name].count(text), `${name} ${JSON.stringify(text)}`).to.equal(
          reference[name].encode(text, [], []).length,
        );
      }
    }
  });

  it('keys pieces by their UTF-8 bytes, one character per byte', () => {
    expect(utf8Bytes('plain ascii')).to.equal('plain ascii');
    expect(utf8Bytes('é')).to.equal('\u00c3\u00a9');
    expect(utf8Bytes('😀')).to.equal('\u00f0\u009f\u0098\u0080');
    expect(utf8Bytes('\ud800')).to.equal('\u00ef\u00bf\u00bd'); // U+FFFD, as TextEncoder
  });
});
