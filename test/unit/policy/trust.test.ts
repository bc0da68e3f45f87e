/** Regressions: unverified e-mails never match rules, and rules never inherit the block's shadow mode. */
import { expect } from 'chai';
import { parseConfig } from '../../../src/config/load.js';
import { claimValues } from '../../../src/policy/match.js';
import { compilePolicy, evaluatePolicy } from '../../../src/policy/rules.js';
import { identity } from './helpers.js';

describe('policy trust rules', () => {
  it('reads an email the IdP marks unverified as absent', () => {
    const unverified = identity({ claims: { email: 'eve@myorg.com', email_verified: false } });
    const verified = identity({ claims: { email: 'eve@myorg.com', email_verified: true } });
    expect(claimValues(unverified, 'email')).to.deep.equal([]);
    expect(claimValues(verified, 'email')).to.deep.equal(['eve@myorg.com']);
  });

  it('keeps allow rules deciding under authorization.mode: shadow (loaded from YAML)', () => {
    const config = parseConfig(`
authentication:
  - provider: { name: a, issuer: https://auth.myorg.com, clientId: gw }
authorization:
  default: deny
  mode: shadow
  rules:
    - name: ml-may-chat
      match: { claims: { groups: ml-team } }
      action: allow
`);
    expect(config.authorization.rules[0]?.mode).to.equal('enforce');
    const policy = compilePolicy(config.authorization);
    const input = { path: '/v1/chat/completions', method: 'POST' };
    const member = evaluatePolicy(policy, { ...input, identity: identity({ groups: ['ml-team'] }) });
    expect(member.allowed).to.equal(true);
    expect(member.allowed && member.shadowDenied).to.equal(undefined);
    const outsider = evaluatePolicy(policy, { ...input, identity: identity({ groups: ['sales'] }) });
    expect(outsider.allowed).to.equal(true);
    expect(outsider.allowed && outsider.shadowDenied?.rule).to.equal('default');
  });
});
