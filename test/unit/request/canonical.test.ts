import { expect } from 'chai';
import fc from 'fast-check';
import { modelProblem, pathProblem } from '../../../src/request/canonical.js';

/**
 * What a lenient upstream might make of a path: percent-escapes decoded, backslashes read as
 * slashes, `;` parameters cut, empty and `.` segments dropped, `..` resolved, a trailing slash
 * ignored, letters folded. An accepted path must be a fixed point of all of it.
 */
function lenient(path: string): string {
  let p = path;
  try {
    p = decodeURIComponent(p);
  } catch {
    /* leave undecodable escapes */
  }
  p = p.replace(/\\/g, '/');
  const out: string[] = [];
  for (const raw of p.split('/')) {
    const segment = raw.split(';', 1)[0] ?? '';
    if (segment === '' || segment === '.') continue;
    if (segment === '..') out.pop();
    else out.push(segment);
  }
  return `/${out.join('/')}`.toLowerCase();
}

const CANONICAL = [
  '/v1/chat/completions',
  '/v1/embeddings',
  '/v1/files/file-AbC_123',
  '/v1/models/ft:gpt-4o-mini:acme::x1',
  '/',
];

describe('request/canonical paths', () => {
  it('accepts the plain form of every API path', () => {
    for (const path of CANONICAL) expect(pathProblem(path), path).to.equal(undefined);
  });

  it('refuses each known trick', () => {
    for (const path of [
      '/v1/chat/completion%73',
      '/v1/./chat/completions',
      '/v1/embeddings/../chat/completions',
      '/v1/%2e%2e/v1/chat/completions',
      '/v1/chat%2fcompletions',
      '/v1//chat/completions',
      '/v1/chat/completions/',
      '/v1/chat/completions;x',
      '/v1\\chat\\completions',
      '/v1/chat/completions%00',
      '/v1/chat/completions#frag',
      '/v1/chat/completions%20',
      '/v1/chat/compl\u00e9tions',
      'v1/chat/completions',
      '',
    ]) {
      expect(pathProblem(path), JSON.stringify(path)).to.be.a('string');
    }
  });

  it('property: an accepted path reads the same to every lenient parser', () => {
    const piece = fc.constantFrom(
      'v1',
      'chat',
      'completions',
      '.',
      '..',
      '',
      '%2e',
      '%2E%2e',
      '%2f',
      '%73',
      '%5c',
      '\\',
      ';x',
      'A',
      '%',
      'é',
      ' ',
      'embeddings',
    );
    fc.assert(
      fc.property(
        fc.array(piece, { maxLength: 8 }),
        fc.array(fc.constantFrom('/', '//', ''), { maxLength: 8 }),
        (pieces, seps) => {
          const path = '/' + pieces.map((p, i) => p + (seps[i] ?? '/')).join('');
          if (pathProblem(path) === undefined)
            expect(lenient(path), path).to.equal(path.toLowerCase());
        },
      ),
      { numRuns: 5000 },
    );
  });

  it('property: every encoded variant of an API path is refused', () => {
    const variant = fc.tuple(
      fc.constantFrom(...CANONICAL.slice(0, 3)),
      fc.nat(),
      fc.constantFrom('escape', 'dot', 'dotdot', 'double', 'trailing', 'backslash', 'param'),
    );
    fc.assert(
      fc.property(variant, ([path, at, how]) => {
        const letters = [...path].map((c, i) => ({ c, i })).filter(({ c }) => /[a-z]/.test(c));
        const pick = letters[at % letters.length];
        const i = pick?.i ?? 1;
        const slash = path.indexOf('/', 1);
        const tricked =
          how === 'escape'
            ? `${path.slice(0, i)}%${path.charCodeAt(i).toString(16)}${path.slice(i + 1)}`
            : how === 'dot'
              ? `${path.slice(0, slash)}/.${path.slice(slash)}`
              : how === 'dotdot'
                ? `${path.slice(0, slash)}/x/..${path.slice(slash)}`
                : how === 'double'
                  ? `${path.slice(0, slash)}/${path.slice(slash)}`
                  : how === 'trailing'
                    ? `${path}/`
                    : how === 'backslash'
                      ? path.replace('/', '\\')
                      : `${path};p=1`;
        expect(pathProblem(tricked), tricked).to.be.a('string');
        expect(lenient(tricked)).to.equal(path.toLowerCase());
      }),
      { numRuns: 2000 },
    );
  });
});

describe('request/canonical model names', () => {
  it('accepts plain ids and refuses the rest', () => {
    for (const ok of ['gpt-4o', 'GPT-4o', 'ft:gpt-4o-mini:org::abc', 'o3-mini-2025-01-31'])
      expect(modelProblem(ok), ok).to.equal(undefined);
    for (const bad of ['', ' gpt-4o', 'gpt-4o ', 'gpt-4o\t', 'gpt\u00a04o', 'gpt-4ø', 42, null])
      expect(modelProblem(bad), JSON.stringify(bad)).to.be.a('string');
  });
});
