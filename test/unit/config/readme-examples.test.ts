/** The configuration examples in README.md are real: each YAML block that declares
 * `authentication` must pass the same validation as `tollgate check-config`. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { parseConfig } from '../../../src/config/load.js';

const README = readFileSync(join(import.meta.dirname, '..', '..', '..', 'README.md'), 'utf8');
const blocks = [...README.matchAll(/```yaml\n([\s\S]*?)```/g)]
  .map((m) => m[1] ?? '')
  .filter((text) => /^authentication:/m.test(text));

describe('README configuration examples', () => {
  it('include the complete reference file and the example policy', () => {
    expect(blocks.length).to.be.at.least(2);
    expect(blocks.some((b) => b.includes('tokenBudgets:') && b.includes('store:') && b.includes('metrics:'))).to.equal(true);
    expect(blocks.some((b) => b.includes('acme.okta.com'))).to.equal(true);
  });

  for (const [i, text] of blocks.entries()) {
    it(`block ${i + 1} passes validation`, () => {
      const config = parseConfig(text, `README.md block ${i + 1}`);
      expect(config.authentication.length).to.be.greaterThan(0);
    });
  }
});
