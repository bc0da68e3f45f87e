/**
 * Whatever text reaches the loader (a half-saved file, a wrong file, a fuzzed one), the only
 * possible outcomes are a frozen Config or a ConfigError whose problems are well formed. The
 * reload loop and `check-config` rely on this.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { parseConfig } from '../../../src/config/load.js';
import { ConfigError } from '../../../src/config/problems.js';
import { FIXTURES } from './helpers.js';

function assertOnlyConfigError(text: string): void {
  let outcome: unknown;
  try {
    outcome = parseConfig(text, 'fuzz.yaml');
  } catch (err) {
    if (!(err instanceof ConfigError))
      throw new Error(`non-ConfigError escaped: ${String(err)}`, { cause: err });
    const lines = text.split('\n').length;
    expect(err.problems.length).to.be.greaterThan(0);
    for (const p of err.problems) {
      expect(p.message).to.be.a('string').and.not.equal('');
      // A validator that threw would show up as an "internal error" problem: that is a bug too.
      expect(p.message).to.not.contain('internal error');
      if (p.line !== undefined) expect(p.line).to.be.within(1, lines + 1);
    }
    return;
  }
  expect(Object.isFrozen(outcome)).to.equal(true);
}

const KEYS = [
  'server',
  'grpc',
  'metrics',
  'authentication',
  'provider',
  'name',
  'issuer',
  'clientId',
  'audiences',
  'jwksUri',
  'algorithms',
  'claims',
  'user',
  'groups',
  'tenant',
  'group',
  'upstream',
  'apiKey',
  'env',
  'file',
  'tenants',
  'identityHeaders',
  'authorization',
  'default',
  'mode',
  'rules',
  'match',
  'path',
  'methods',
  'models',
  'action',
  'rateLimits',
  'requestsPerUnit',
  'unit',
  'key',
  'tokenBudgets',
  'maxTokens',
  'period',
  'timeZone',
  'metering',
  'store',
  'redis',
  'url',
  'timeoutMs',
  'onUnavailable',
  'keyPrefix',
  'logging',
  'level',
  '__proto__',
  'x-user',
];

const TOKENS = [
  ...KEYS,
  ':',
  ': ',
  '-',
  '- ',
  ' ',
  '  ',
  '\n',
  '\n  ',
  '\n    ',
  '[',
  ']',
  '{',
  '}',
  ',',
  '&a ',
  '*a',
  '*b',
  '!!str ',
  '!!map ',
  '!tag ',
  '"',
  "'",
  '#',
  '---\n',
  '...\n',
  '|',
  '>',
  '? ',
  '<<: ',
  '%YAML 1.2\n',
  'https://x.example',
  'redis://h',
  '0',
  '-1',
  '1.5',
  '1e400',
  '0x10',
  'null',
  '~',
  'true',
  'no',
  '.nan',
  '*@myorg.com',
  '\t',
  '\r\n',
  '\u0000',
];

const yamlish = fc.array(fc.constantFrom(...TOKENS), { maxLength: 60 }).map((t) => t.join(''));

/** Objects shaped like a config (known keys at every level) with arbitrary leaves. */
const { node: configish } = fc.letrec<{ node: unknown }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.oneof(
      fc.string(),
      fc.integer(),
      fc.double(),
      fc.boolean(),
      fc.constant(null),
      fc.constantFrom('allow', 'minute', 'RS256', '/v1/*'),
    ),
    fc.array(tie('node'), { maxLength: 4 }),
    fc.dictionary(fc.constantFrom(...KEYS), tie('node'), { maxKeys: 6 }),
  ),
}));

function dump(value: unknown): string | undefined {
  try {
    return stringify(value);
  } catch {
    return undefined;
  }
}

describe('config/load: property-based', () => {
  it('arbitrary strings only ever produce ConfigError', () => {
    fc.assert(fc.property(fc.string({ maxLength: 200 }), assertOnlyConfigError), { numRuns: 200 });
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 200 }), assertOnlyConfigError), {
      numRuns: 100,
    });
  });

  it('YAML-ish token soup only ever produces ConfigError', () => {
    fc.assert(fc.property(yamlish, assertOnlyConfigError), { numRuns: 300 });
  });

  it('arbitrary JS values dumped to YAML only ever produce ConfigError', () => {
    fc.assert(
      fc.property(fc.anything(), (v) => {
        const text = dump(v);
        fc.pre(text !== undefined);
        assertOnlyConfigError(text);
      }),
      { numRuns: 200 },
    );
  });

  it('config-shaped values dumped to YAML only ever produce ConfigError', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.constantFrom(...KEYS), configish, { maxKeys: 8 }), (v) => {
        const text = dump(v);
        fc.pre(text !== undefined);
        assertOnlyConfigError(text);
      }),
      { numRuns: 200 },
    );
  });

  it('valid files with lines dropped, repeated or swapped only ever produce ConfigError', () => {
    const lines = readFileSync(join(FIXTURES, 'full.yaml'), 'utf8').split('\n');
    const edit = fc.array(
      fc.tuple(
        fc.constantFrom('drop', 'dup', 'swap', 'indent'),
        fc.nat(lines.length - 1),
        fc.nat(lines.length - 1),
      ),
      { minLength: 1, maxLength: 4 },
    );
    fc.assert(
      fc.property(edit, (edits) => {
        const out = [...lines];
        for (const [op, i, j] of edits) {
          const a = out[i % out.length] ?? '';
          const b = out[j % out.length] ?? '';
          if (op === 'drop') out.splice(i % out.length, 1);
          else if (op === 'dup') out.splice(i % out.length, 0, a);
          else if (op === 'indent') out[i % out.length] = `  ${a}`;
          else {
            out[i % out.length] = b;
            out[j % out.length] = a;
          }
        }
        assertOnlyConfigError(out.join('\n'));
      }),
      { numRuns: 150 },
    );
  });
});
