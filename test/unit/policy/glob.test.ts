import { expect } from 'chai';
import fc from 'fast-check';
import { compileGlob, compileGlobs } from '../../../src/policy/glob.js';

/** Obviously-correct reference: recursive over code points, memoized by position. */
function reference(pattern: string, value: string): boolean {
  const p = Array.from(pattern);
  const v = Array.from(value);
  const memo = new Map<number, boolean>();
  const at = (i: number, j: number): boolean => {
    const key = i * (v.length + 1) + j;
    const known = memo.get(key);
    if (known !== undefined) return known;
    let result: boolean;
    if (i === p.length) result = j === v.length;
    else if (p[i] === '*') result = at(i + 1, j) || (j < v.length && at(i, j + 1));
    else result = j < v.length && (p[i] === '?' || p[i] === v[j]) && at(i + 1, j + 1);
    memo.set(key, result);
    return result;
  };
  return at(0, 0);
}

const matches = (pattern: string, value: string): boolean => compileGlob(pattern)(value);

describe('policy/glob', () => {
  it('matches literals exactly and case-sensitively', () => {
    expect(matches('gpt-4o', 'gpt-4o')).to.equal(true);
    expect(matches('gpt-4o', 'gpt-4o-mini')).to.equal(false);
    expect(matches('gpt-4o', 'gpt-4')).to.equal(false);
    expect(matches('gpt-4o', 'GPT-4o')).to.equal(false);
  });

  it('lets * match any run, including none, slashes and @', () => {
    expect(matches('gpt-4o*', 'gpt-4o')).to.equal(true);
    expect(matches('gpt-4o*', 'gpt-4o-mini-2024-07-18')).to.equal(true);
    expect(matches('gpt-4o*', 'gpt-4')).to.equal(false);
    expect(matches('*', '')).to.equal(true);
    expect(matches('*', 'a/b@c')).to.equal(true);
    expect(matches('a*z', 'a/@/z')).to.equal(true);
    expect(matches('a**z', 'az')).to.equal(true);
    expect(matches('*mini*', 'gpt-4o-mini-2024')).to.equal(true);
    expect(matches('*mini*', 'gpt-4o')).to.equal(false);
  });

  it('matches e-mail domains with *@domain', () => {
    const myorg = compileGlob('*@myorg.com');
    expect(myorg('alice@myorg.com')).to.equal(true);
    expect(myorg('@myorg.com')).to.equal(true);
    expect(myorg('alice@evil.com')).to.equal(false);
    expect(myorg('alice@myorg.com.evil.com')).to.equal(false);
    expect(myorg('alice@myorgXcom')).to.equal(false);
    expect(myorg('alice@MYORG.COM')).to.equal(false);
  });

  it('lets ? match exactly one character (one code point)', () => {
    expect(matches('gpt-?', 'gpt-4')).to.equal(true);
    expect(matches('gpt-?', 'gpt-')).to.equal(false);
    expect(matches('gpt-?', 'gpt-4o')).to.equal(false);
    expect(matches('a?c', 'a😀c')).to.equal(true);
    expect(matches('a??c', 'a😀c')).to.equal(false);
    expect(matches('?', 'é')).to.equal(true);
  });

  it('treats regex metacharacters as literals', () => {
    expect(matches('a.c', 'a.c')).to.equal(true);
    expect(matches('a.c', 'abc')).to.equal(false);
    expect(matches('(a|b)', '(a|b)')).to.equal(true);
    expect(matches('(a|b)', 'a')).to.equal(false);
    expect(matches('^x$', '^x$')).to.equal(true);
    expect(matches('[ab]+', 'a')).to.equal(false);
    expect(matches('[ab]+', '[ab]+')).to.equal(true);
    expect(matches('a\\*', 'a\\anything')).to.equal(true);
    expect(matches('{1,2}', '{1,2}')).to.equal(true);
  });

  it('empty pattern matches only the empty string', () => {
    expect(matches('', '')).to.equal(true);
    expect(matches('', 'a')).to.equal(false);
  });

  it('stays fast on patterns that make backtracking regexes explode', () => {
    const hostile = compileGlob('*a*a*a*a*a*a*a*a*a*b');
    const started = performance.now();
    expect(hostile('a'.repeat(20_000))).to.equal(false);
    expect(performance.now() - started).to.be.lessThan(1000);
  });

  it('compileGlobs accepts a value matching any pattern, and nothing for an empty list', () => {
    const m = compileGlobs(['gpt-4o*', 'o1']);
    expect(m('gpt-4o-mini')).to.equal(true);
    expect(m('o1')).to.equal(true);
    expect(m('o1-mini')).to.equal(false);
    expect(compileGlobs([])('anything')).to.equal(false);
  });

  describe('properties', () => {
    const patternChars = [
      'a',
      'b',
      '*',
      '?',
      '.',
      '(',
      '+',
      '[',
      '\\',
      '^',
      '$',
      '|',
      '@',
      '/',
      'é',
      '😀',
    ];
    const valueChars = ['a', 'b', '.', '(', '@', '/', 'é', '😀', '*', '?'];
    const pattern = fc
      .array(fc.constantFrom(...patternChars), { maxLength: 12 })
      .map((a) => a.join(''));
    const value = fc
      .array(fc.constantFrom(...valueChars), { maxLength: 16 })
      .map((a) => a.join(''));

    it('agrees with the reference matcher on small alphabets', () => {
      fc.assert(
        fc.property(pattern, value, (p, v) => compileGlob(p)(v) === reference(p, v)),
        { numRuns: 2000 },
      );
    });

    it('never throws and agrees with the reference on arbitrary unicode', () => {
      const any = fc.string({ unit: 'binary', maxLength: 10 });
      fc.assert(
        fc.property(any, any, (p, v) => compileGlob(p)(v) === reference(p, v)),
        { numRuns: 1000 },
      );
    });

    it('a pattern without wildcards matches only itself', () => {
      const literal = fc
        .string({ maxLength: 20 })
        .filter((s) => !s.includes('*') && !s.includes('?'));
      fc.assert(
        fc.property(literal, fc.string({ maxLength: 20 }), (p, v) => {
          const m = compileGlob(p);
          return m(p) && m(v) === (v === p);
        }),
      );
    });

    it('a pattern matches the value it was built from when wildcards replace parts of it', () => {
      fc.assert(
        fc.property(value, fc.nat(), (v, seed) => {
          const chars = Array.from(v);
          const p = chars
            .map((c, i) => ((seed >> (i % 30)) & 1 ? '*' : (seed >> ((i + 1) % 30)) & 1 ? '?' : c))
            .join('');
          return compileGlob(p)(v);
        }),
      );
    });
  });
});
