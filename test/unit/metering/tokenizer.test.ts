import { expect } from 'chai';
import { createRequire } from 'node:module';
import { Tiktoken, type TiktokenBPE } from 'js-tiktoken/lite';
import {
  BudgetedCounter,
  TokenCounter,
  countTokens,
  encodingForModel,
} from '../../../src/metering/tokenizer.js';

const requireCjs = createRequire(import.meta.url);
/** Reference: js-tiktoken used directly on the whole text, no batching. */
const reference = {
  o200k: new Tiktoken(requireCjs('js-tiktoken/ranks/o200k_base') as TiktokenBPE),
  cl100k: new Tiktoken(requireCjs('js-tiktoken/ranks/cl100k_base') as TiktokenBPE),
};

const PROSE =
  'It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness. ' +
  'Über naïve café owners said: «¿Qué tal?» 😀 — 東京は今日も晴れです。\n\tTabs\r\nand    spaces.  ';

describe('metering/tokenizer', () => {
  it('selects the encoding family by longest model prefix (openai.md §7)', () => {
    const cases: Array<[string, string]> = [
      ['gpt-4o', 'o200k_base'],
      ['gpt-4o-mini-2024-07-18', 'o200k_base'],
      ['chatgpt-4o-latest', 'o200k_base'],
      ['gpt-4.1-nano', 'o200k_base'],
      ['gpt-4.5-preview', 'o200k_base'],
      ['o1-mini', 'o200k_base'],
      ['o3', 'o200k_base'],
      ['o4-mini-2025-04-16', 'o200k_base'],
      ['gpt-5-mini', 'o200k_base'],
      ['gpt-oss-120b', 'o200k_base'],
      ['gpt-4', 'cl100k_base'],
      ['gpt-4-0613', 'cl100k_base'],
      ['gpt-4-turbo-2024-04-09', 'cl100k_base'],
      ['gpt-3.5-turbo-0125', 'cl100k_base'],
      ['gpt-35-turbo', 'cl100k_base'],
      ['text-embedding-ada-002', 'cl100k_base'],
      ['text-embedding-3-small', 'cl100k_base'],
      ['text-embedding-3-large', 'cl100k_base'],
      ['davinci-002', 'cl100k_base'],
      ['babbage-002', 'cl100k_base'],
      ['ft:gpt-3.5-turbo-0125:my-org::9xYz', 'cl100k_base'],
      ['ft:gpt-4o-mini-2024-07-18:my-org:custom:abc123', 'o200k_base'],
      ['openai/gpt-4-turbo', 'cl100k_base'],
      ['GPT-4', 'cl100k_base'],
      ['some-unknown-model', 'o200k_base'],
      ['', 'o200k_base'],
    ];
    for (const [model, encoding] of cases)
      expect(encodingForModel(model), model).to.equal(encoding);
  });

  it('counts exactly like tiktoken for ordinary text, per family', () => {
    const long = PROSE.repeat(40); // several batches
    expect(countTokens(long, 'gpt-4o')).to.equal(reference.o200k.encode(long, [], []).length);
    expect(countTokens(long, 'gpt-4')).to.equal(reference.cl100k.encode(long, [], []).length);
    expect(countTokens('hello world', 'gpt-4o')).to.equal(2);
    expect(countTokens('', 'gpt-4o')).to.equal(0);
  });

  it('treats special-token text as plain text instead of throwing', () => {
    expect(countTokens('a <|endoftext|> b', 'gpt-4o')).to.be.greaterThan(3);
  });

  it('counts the same however the text is streamed in pieces', () => {
    const text = PROSE.repeat(30);
    const counter = new TokenCounter('gpt-4o');
    for (let i = 0; i < text.length; i += 3) counter.add(text.slice(i, i + 3));
    expect(counter.tokens).to.equal(countTokens(text, 'gpt-4o'));
  });

  it('bounds the work on pathological runs with a small, upward error', () => {
    const run = 'A'.repeat(20_000);
    const started = performance.now();
    const n = countTokens(run, 'gpt-4o');
    expect(performance.now() - started).to.be.below(10_000);
    // Whole-run BPE would give 2 500 tokens of 8 A's; forced cuts every 32 chars keep it exact
    // here because 32 is a multiple of 8, and never undercount in general.
    expect(n).to.be.at.least(2_500);
    const minified = JSON.stringify(
      Array.from({ length: 200 }, (_, i) => ({ id: i, name: `item${i}` })),
    );
    const exact = reference.o200k.encode(minified, [], []).length;
    const ours = countTokens(minified, 'gpt-4o');
    expect(ours).to.be.at.least(exact);
    expect(ours).to.be.below(exact * 1.15);
  });

  it('keeps a bounded tail in memory while counting a long stream', () => {
    const counter = new TokenCounter('gpt-4o');
    for (let i = 0; i < 2_000; i++) counter.add('word ');
    const pending = (counter as unknown as { pending: string }).pending;
    expect(pending.length).to.be.below(1_200);
    expect(counter.tokens).to.equal(reference.o200k.encode('word '.repeat(2_000), [], []).length);

    // No spaces at all: line breaks are exact cut points too.
    const lines = 'línea。\n'.repeat(2_000);
    const byLine = new TokenCounter('gpt-4o');
    for (let i = 0; i < lines.length; i += 5) byLine.add(lines.slice(i, i + 5));
    expect((byLine as unknown as { pending: string }).pending.length).to.be.below(1_200);
    expect(byLine.tokens).to.equal(reference.o200k.encode(lines, [], []).length);

    // Neither spaces nor line breaks: still cut, at tab boundaries, within a few kilobytes.
    const tabs = new TokenCounter('gpt-4o');
    for (let i = 0; i < 5_000; i++) tabs.add('cell\t');
    expect((tabs as unknown as { pending: string }).pending.length).to.be.below(4_200);
    expect(tabs.tokens).to.be.closeTo(
      reference.o200k.encode('cell\t'.repeat(5_000), [], []).length,
      10,
    );
  });

  it('tokenizes nothing until asked while a stream is short, and holds a bounded amount', () => {
    type Inside = { exactChars: number; heldChars: number; pending: string };
    const counter = new TokenCounter('gpt-4o');
    const answer = 'A typical streamed answer of a few thousand characters. '.repeat(150); // ~8.4 K
    for (let i = 0; i < answer.length; i += 7) counter.add(answer.slice(i, i + 7));
    // Usage usually arrives at the end of a stream: this text was never tokenized.
    expect((counter as unknown as Inside).exactChars).to.equal(0);
    expect(counter.tokens).to.equal(reference.o200k.encode(answer, [], []).length);

    const long = new TokenCounter('gpt-4o');
    for (let i = 0; i < 3_000; i++) long.add('a much longer answer ');
    const inside = long as unknown as Inside;
    expect(inside.exactChars).to.be.greaterThan(0); // counted as it went
    expect(inside.heldChars + inside.pending.length).to.be.below(16 * 1024 + 1_200);
    expect(long.tokens).to.equal(
      reference.o200k.encode('a much longer answer '.repeat(3_000), [], []).length,
    );
  });

  it('extrapolates past the exact-character allowance of a BudgetedCounter', () => {
    const text = 'lorem ipsum dolor sit amet '.repeat(200);
    const exact = countTokens(text, 'gpt-4o');
    const budget = new BudgetedCounter('gpt-4o', 1_000);
    const estimated = budget.count(text);
    expect(estimated).to.be.within(exact * 0.9, exact * 1.1);
    // The allowance is shared: a later text is extrapolated with the measured ratio.
    expect(budget.count('lorem ipsum dolor sit amet ')).to.be.within(4, 7);
    expect(new BudgetedCounter('gpt-4o', 1e9).count(text)).to.equal(exact);
  });
});
