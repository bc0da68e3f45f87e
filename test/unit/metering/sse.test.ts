import { expect } from 'chai';
import fc from 'fast-check';
import { SseParser, type SseEvent } from '../../../src/metering/sse.js';
import { FIXTURES, cutsArb, fixture, splitAt } from './helpers.js';

function parseChunks(chunks: readonly Buffer[]): SseEvent[] {
  const parser = new SseParser();
  const events: SseEvent[] = [];
  for (const chunk of chunks) events.push(...parser.push(chunk));
  events.push(...parser.end());
  return events;
}

const parseAll = (input: string | Buffer): SseEvent[] =>
  parseChunks([typeof input === 'string' ? Buffer.from(input, 'utf8') : input]);

const view = (events: SseEvent[]) =>
  events.map((e) => ({ event: e.event, data: e.data, raw: e.raw.toString('latin1') }));

describe('metering/sse', () => {
  it('parses data events and [DONE]', () => {
    const events = parseAll('data: {"a":1}\n\ndata: [DONE]\n\n');
    expect(events.map((e) => e.data)).to.deep.equal(['{"a":1}', '[DONE]']);
    expect(events[0]?.raw.toString()).to.equal('data: {"a":1}\n\n');
  });

  it('reads event names, joins multi-line data with \\n and strips only one space', () => {
    const [e] = parseAll('event: response.completed\ndata:  two spaces\ndata:none\ndata\n\n');
    expect(e?.event).to.equal('response.completed');
    expect(e?.data).to.equal(' two spaces\nnone\n');
  });

  it('accepts CRLF, CR and LF line endings, even mixed', () => {
    const events = parseAll('data: a\r\n\r\ndata: b\r\rdata: c\n\ndata: d\r\n\n');
    expect(events.map((e) => e.data)).to.deep.equal(['a', 'b', 'c', 'd']);
    expect(Buffer.concat(events.map((e) => e.raw)).toString()).to.equal(
      'data: a\r\n\r\ndata: b\r\rdata: c\n\ndata: d\r\n\n',
    );
  });

  it('skips comment lines but keeps their bytes in a data-less block', () => {
    const events = parseAll(': keep-alive\n\ndata: x\n: inline comment\n\n');
    expect(view(events)).to.deep.equal([
      { event: undefined, data: '', raw: ': keep-alive\n\n' },
      { event: undefined, data: 'x', raw: 'data: x\n: inline comment\n\n' },
    ]);
  });

  it('decodes a UTF-8 character split across chunks', () => {
    const bytes = Buffer.from('data: ¿Qué tal 😀?\n\n', 'utf8');
    const emoji = bytes.indexOf(0xf0);
    const events = parseChunks([bytes.subarray(0, emoji + 2), bytes.subarray(emoji + 2)]);
    expect(events[0]?.data).to.equal('¿Qué tal 😀?');
  });

  it('waits after a CR at a chunk end to see whether LF follows', () => {
    const parser = new SseParser();
    expect(parser.push(Buffer.from('data: a\r\n\r'))).to.deep.equal([]);
    expect(parser.pendingBytes).to.equal(10);
    const events = parser.push(Buffer.from('\ndata: b\n\n'));
    expect(view(events)).to.deep.equal([
      { event: undefined, data: 'a', raw: 'data: a\r\n\r\n' },
      { event: undefined, data: 'b', raw: 'data: b\n\n' },
    ]);
    expect(parser.pendingBytes).to.equal(0);
  });

  it('returns an unterminated last block from end(), so no byte is lost', () => {
    const parser = new SseParser();
    expect(parser.push(Buffer.from('data: {"usage":1}'))).to.deep.equal([]);
    const [e] = parser.end();
    expect(e?.data).to.equal('{"usage":1}');
    expect(e?.raw.toString()).to.equal('data: {"usage":1}');
    expect(parser.end()).to.deep.equal([]);
  });

  it('strips a leading byte-order mark', () => {
    expect(parseAll('\ufeffdata: x\n\n')[0]?.data).to.equal('x');
  });

  it('gives the same events for every single-byte split of every fixture', () => {
    for (const name of FIXTURES) {
      const buf = fixture(name);
      const whole = view(parseAll(buf));
      const bytes = [...buf].map((_, i) => buf.subarray(i, i + 1));
      expect(view(parseChunks(bytes)), name).to.deep.equal(whole);
    }
  });

  it('property: any split of a fixture yields the whole-body events, and raw reproduces the input', () => {
    for (const name of FIXTURES) {
      const buf = fixture(name);
      const whole = view(parseAll(buf));
      fc.assert(
        fc.property(cutsArb(buf.length), (cuts) => {
          const events = parseChunks(splitAt(buf, cuts));
          expect(view(events)).to.deep.equal(whole);
          expect(Buffer.concat(events.map((e) => e.raw)).equals(buf)).to.equal(true);
        }),
        { numRuns: 60 },
      );
    }
  });

  it('property: random streams (any line endings, comments, unicode) survive any split', () => {
    const line = fc.oneof(
      fc
        .string({ unit: 'grapheme', maxLength: 12 })
        .map((s) => `data: ${s.replace(/[\r\n]/g, '')}`),
      fc.constantFrom('event: x', ': comment', 'data', 'id: 7', 'retry: 10'),
    );
    const eol = fc.constantFrom('\n', '\r\n', '\r');
    const block = fc
      .tuple(fc.array(fc.tuple(line, eol), { maxLength: 4 }), eol)
      .map(([lines, end]) => lines.map(([l, e]) => l + e).join('') + end);
    const stream = fc
      .array(block, { maxLength: 8 })
      .map((blocks) => Buffer.from(blocks.join(''), 'utf8'));
    fc.assert(
      fc.property(
        stream.chain((buf) => fc.tuple(fc.constant(buf), cutsArb(buf.length))),
        ([buf, cuts]) => {
          const whole = parseAll(buf);
          const split = parseChunks(splitAt(buf, cuts));
          expect(view(split)).to.deep.equal(view(whole));
          expect(Buffer.concat(split.map((e) => e.raw)).equals(buf)).to.equal(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('stays linear: a 4 MB stream fed in 7-byte chunks parses quickly', () => {
    const one = Buffer.from(`data: ${'x'.repeat(200)}\n\n`);
    const buf = Buffer.concat(Array.from({ length: 20_000 }, () => one));
    const parser = new SseParser();
    const started = performance.now();
    let count = 0;
    for (let i = 0; i < buf.length; i += 7) count += parser.push(buf.subarray(i, i + 7)).length;
    expect(count).to.equal(20_000);
    // Quadratic rescanning would take minutes here; generous bound for slow CI machines.
    expect(performance.now() - started).to.be.below(5_000);
  });
});
