import { expect } from 'chai';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { checkConfig } from '../../../src/cli/check-config.js';
import { FIXTURES } from './helpers.js';

async function run(file: string): Promise<{ code: number; out: string; err: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  const chunks = { out: '', err: '' };
  out.on('data', (c: Buffer) => (chunks.out += c.toString()));
  err.on('data', (c: Buffer) => (chunks.err += c.toString()));
  const code = await checkConfig(file, out, err);
  return { code, ...chunks };
}

describe('cli/check-config', () => {
  it('prints a summary and returns 0 for a valid file', async () => {
    const file = join(FIXTURES, 'design-example.yaml');
    expect(await run(file)).to.deep.equal({
      code: 0,
      out: `ok: ${file} is valid (1 provider, 2 rules, 1 rate limit, 1 budget)\n`,
      err: '',
    });
    const full = join(FIXTURES, 'full.yaml');
    expect((await run(full)).out).to.equal(
      `ok: ${full} is valid (2 providers, 2 rules, 1 rate limit, 3 budgets)\n`,
    );
  });

  it('prints every problem as FILE:LINE: path: message and returns 1', async () => {
    const file = join(FIXTURES, 'broken-typo.yaml');
    const { code, out, err } = await run(file);
    expect(code).to.equal(1);
    expect(out).to.equal('');
    expect(err.split('\n')).to.deep.equal([
      `${file}:3: authentication[0].provider.issuer: is required`,
      `${file}:3: authentication[0].provider: needs \`clientId\` or \`audiences\`: a token is only accepted for an audience listed here`,
      `${file}:4: authentication[0].provider.isuer: unknown key \`isuer\`; did you mean \`issuer\`?`,
      `${file}:5: authentication[0].provider.clientID: unknown key \`clientID\`; did you mean \`clientId\`?`,
      `${file}:6: rateLimit: unknown key \`rateLimit\`; did you mean \`rateLimits\`?`,
      `invalid: ${file} has 5 problems`,
      '',
    ]);
  });

  it('prints (root) for file-level problems', async () => {
    const file = join(FIXTURES, 'broken-syntax.yaml');
    const { code, err } = await run(file);
    expect(code).to.equal(1);
    expect(err).to.match(
      new RegExp(
        `^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:5: \\(root\\): YAML syntax error: `,
      ),
    );
  });

  it('returns 2 for a missing or unreadable file', async () => {
    const missing = join(FIXTURES, 'nope.yaml');
    const r = await run(missing);
    expect(r.code).to.equal(2);
    expect(r.out).to.equal('');
    expect(r.err).to.match(/^error: cannot read .*nope\.yaml: ENOENT/);
    const dir = await run(FIXTURES);
    expect(dir.code).to.equal(2);
    expect(dir.err).to.contain('EISDIR');
  });
});
