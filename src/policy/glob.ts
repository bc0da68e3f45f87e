/**
 * Glob patterns used by policy rules (`models: ["gpt-4o*"]`, `email: "*@myorg.com"`).
 *
 * Syntax: `*` matches any run of characters (none included, `/` and `@` included), `?` matches
 * exactly one character, every other character is literal — there is no escaping, no classes,
 * no braces. Claim values are matched case-sensitively, as the token carries them, so write
 * patterns in the case your IdP emits (e-mail addresses are usually lower-case); model names
 * are matched ignoring case (`compileGlobs(…, { ignoreCase: true })`).
 *
 * "Character" means a Unicode code point, so `?` matches one emoji or accented letter whatever
 * its UTF-16 length.
 *
 * Patterns are compiled once, at config load, into a matcher that never builds a RegExp: the
 * classic wildcard walk with one backtrack point runs in O(pattern × value) in the worst case,
 * so a hostile claim or model string cannot trigger catastrophic backtracking.
 */

/** A compiled glob: true when the whole value matches. */
export type GlobMatcher = (value: string) => boolean;

const STAR = 0;
const ANY = 1;
/** One pattern element: `*`, `?`, or a literal code point (as its string). */
type Token = typeof STAR | typeof ANY | string;

function tokenize(pattern: string): Token[] {
  const tokens: Token[] = [];
  for (const ch of pattern) {
    if (ch === '*') {
      // Consecutive stars match the same thing as one; collapsing keeps the walk simple.
      if (tokens[tokens.length - 1] !== STAR) tokens.push(STAR);
    } else if (ch === '?') {
      tokens.push(ANY);
    } else {
      tokens.push(ch);
    }
  }
  return tokens;
}

/** The code point of `value` at UTF-16 index `i`, as a string (lone surrogates stay alone). */
function charAt(value: string, i: number): string {
  const cp = value.codePointAt(i) ?? 0;
  return cp > 0xffff ? value.slice(i, i + 2) : value.slice(i, i + 1);
}

function walk(tokens: readonly Token[], value: string): boolean {
  let t = 0;
  let i = 0;
  // Where the last `*` sits in the pattern and where in the value it started absorbing.
  let starToken = -1;
  let starEnd = 0;
  while (i < value.length) {
    const token = tokens[t];
    if (token === STAR) {
      starToken = t;
      starEnd = i;
      t += 1;
      continue;
    }
    if (token !== undefined) {
      const ch = charAt(value, i);
      if (token === ANY || token === ch) {
        t += 1;
        i += ch.length;
        continue;
      }
    }
    // Mismatch: let the last star absorb one more character and retry after it. Earlier
    // stars never need revisiting, which is what keeps this linear in space and polynomial.
    if (starToken < 0) return false;
    starEnd += charAt(value, starEnd).length;
    t = starToken + 1;
    i = starEnd;
  }
  while (tokens[t] === STAR) t += 1;
  return t === tokens.length;
}

/**
 * Compile `pattern` into a matcher. Never throws: every string is a valid pattern.
 * Compile at config load and keep the matcher; calling it allocates nothing per request
 * beyond short substrings.
 */
export function compileGlob(pattern: string): GlobMatcher {
  const tokens = tokenize(pattern);
  if (tokens.every((t) => typeof t === 'string')) {
    // No wildcards: plain equality (code-point and code-unit equality agree).
    return (value) => value === pattern;
  }
  if (tokens.length === 1 && tokens[0] === STAR) return () => true;
  return (value) => walk(tokens, value);
}

/**
 * Compile several patterns into one matcher that accepts a value matching any of them. With
 * `ignoreCase`, patterns and values are compared in lower case (model names).
 */
export function compileGlobs(patterns: readonly string[], opts: { ignoreCase?: boolean } = {}): GlobMatcher {
  if (opts.ignoreCase === true) {
    const lower = compileGlobs(patterns.map((p) => p.toLowerCase()));
    return (value) => lower(value.toLowerCase());
  }
  const matchers = patterns.map(compileGlob);
  return (value) => matchers.some((m) => m(value));
}
