/** The cases format of `tollgate test`, its comparisons and reports; the README's Okta cases pass. */
import { readFile } from 'node:fs/promises';
import { expect } from 'chai';
import { parseConfig } from '../../../src/config/load.js';
import { Explainer } from '../../../src/cli/explain.js';
import { CasesError, formatJunit, formatTap, parseCases, runCases } from '../../../src/cli/policy-test.js';

const DIR = 'examples/policy-tests';

describe('cli/policy-test: cases', () => {
  let explainer: Explainer;
  before(async () => {
    explainer = new Explainer(parseConfig(await readFile(`${DIR}/okta.yaml`, 'utf8'), `${DIR}/okta.yaml`));
  });

  it('the shipped cases of the README policy all pass', async () => {
    const results = await runCases(explainer, parseCases(await readFile(`${DIR}/okta.cases.yaml`, 'utf8')));
    expect(results).to.have.length.above(5);
    expect(results.flatMap((r) => r.failures.map((f) => `${r.name}: ${f}`))).to.deep.equal([]);
  });

  it('a wrong expectation fails with what differs', async () => {
    const [result] = await runCases(explainer, parseCases(`
cases:
  - name: wrong
    request: { claims: { sub: ann, groups: [support] }, model: gpt-4o }
    expect: { decision: allow, rule: support-small-chat, headers: { x-tollgate-reason: allowed } }
`));
    expect(result?.failures).to.deep.equal([
      'decision: expected "allow", got "deny"',
      'rule: expected "support-small-chat", got "other-models"',
      'header x-tollgate-reason: expected "allowed", got "model_not_allowed"',
    ]);
  });

  it('TAP and JUnit reports', async () => {
    const results = await runCases(explainer, parseCases(`
- name: "ok <1>"
  request: { claims: { sub: ann, groups: [support] }, model: gpt-4o-mini }
  expect: { decision: allow }
- name: "bad # 2"
  request: { claims: { sub: ann, groups: [support] }, model: gpt-4o }
  expect: { decision: allow }
`));
    expect(formatTap(results)).to.equal(
      'TAP version 13\n1..2\nok 1 - ok <1>\nnot ok 2 - bad \\# 2\n  ---\n  # decision: expected "allow", got "deny"\n  ...\n',
    );
    const junit = formatJunit(results, 'c.yaml');
    expect(junit).to.include('<testsuite name="c.yaml" tests="2" failures="1">');
    expect(junit).to.include('<testcase classname="c.yaml" name="ok &lt;1&gt;"/>');
    expect(junit).to.include('<failure message="decision: expected &quot;allow&quot;, got &quot;deny&quot;">');
  });

  it('refuses a malformed file with the place of the problem', () => {
    const bad = (text: string, message: RegExp): void => {
      expect(() => parseCases(text)).to.throw(CasesError, message);
    };
    bad('cases: []', /non-empty list/);
    bad('- request: {}\n  expect: {}', /cases\[0\]\.expect must be a non-empty map/);
    bad('- request: { pth: /v1 }\n  expect: { decision: allow }', /cases\[0\]\.request: unknown key "pth"/);
    bad('- request: {}\n  expect: { decision: maybe }', /decision must be allow, deny or answer/);
    bad('- request: { model: a, body: {} }\n  expect: { decision: allow }', /model or body, not both/);
    bad('- request: {}\n  expect: { verdict: allow }', /unknown key "verdict"/);
    bad(': : :', /not YAML/);
  });
});
