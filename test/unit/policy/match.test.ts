import { expect } from 'chai';
import { claimValues, compileMatch, type MatchInput } from '../../../src/policy/match.js';
import { identity, match } from './helpers.js';

function input(overrides: Partial<MatchInput> = {}): MatchInput {
  return { path: '/v1/chat/completions', method: 'POST', identity: identity(), ...overrides };
}

describe('policy/match', () => {
  describe('path and methods', () => {
    it('an absent path, methods and claims match everything', () => {
      expect(compileMatch(match())(input({ path: '/anything', method: 'DELETE' }))).to.deep.equal({
        matched: true,
        claimsUsed: {},
      });
    });

    it('matches a path exactly', () => {
      const m = compileMatch(match({ path: '/v1/chat/completions' }));
      expect(m(input()).matched).to.equal(true);
      expect(m(input({ path: '/v1/chat/completions/x' })).matched).to.equal(false);
      expect(m(input({ path: '/v1/chat' })).matched).to.equal(false);
    });

    it('ignores letter case, so a rule holds on an upstream that routes case-insensitively', () => {
      expect(compileMatch(match({ path: '/v1/chat/completions' }))(input({ path: '/V1/Chat/Completions' })).matched).to.equal(true);
      expect(compileMatch(match({ path: '/V1/Batches*' }))(input({ path: '/v1/batches/b_1' })).matched).to.equal(true);
    });

    it('matches a prefix when the path ends with *', () => {
      const m = compileMatch(match({ path: '/v1/*' }));
      expect(m(input({ path: '/v1/' })).matched).to.equal(true);
      expect(m(input({ path: '/v1/embeddings' })).matched).to.equal(true);
      expect(m(input({ path: '/v1/chat/completions' })).matched).to.equal(true);
      expect(m(input({ path: '/v1' })).matched).to.equal(false);
      expect(m(input({ path: '/v2/models' })).matched).to.equal(false);
    });

    it('a * inside the path is literal (only a trailing * means prefix)', () => {
      const m = compileMatch(match({ path: '/v1/*/completions' }));
      expect(m(input({ path: '/v1/chat/completions' })).matched).to.equal(false);
      expect(m(input({ path: '/v1/*/completions' })).matched).to.equal(true);
    });

    it('compares methods case-insensitively', () => {
      const m = compileMatch(match({ methods: ['post', 'Get'] }));
      expect(m(input({ method: 'POST' })).matched).to.equal(true);
      expect(m(input({ method: 'get' })).matched).to.equal(true);
      expect(m(input({ method: 'DELETE' })).matched).to.equal(false);
    });
  });

  describe('models', () => {
    const m = compileMatch(match({ models: ['gpt-4o*', 'o1'] }));

    it('matches the body model against globs', () => {
      expect(m(input({ model: 'gpt-4o-mini' })).matched).to.equal(true);
      expect(m(input({ model: 'o1' })).matched).to.equal(true);
      expect(m(input({ model: 'gpt-3.5-turbo' })).matched).to.equal(false);
      expect(m(input({ model: 'o1-preview' })).matched).to.equal(false);
    });

    it('ignores letter case: GPT-4o meets the rule for gpt-4o*, and a capitalised glob holds too', () => {
      expect(m(input({ model: 'GPT-4o' })).matched).to.equal(true);
      expect(m(input({ model: 'Gpt-4O-Mini' })).matched).to.equal(true);
      expect(compileMatch(match({ models: ['GPT-4.1*'] }))(input({ model: 'gpt-4.1-mini' })).matched).to.equal(true);
    });

    it('does not match a request without a model', () => {
      expect(m(input()).matched).to.equal(false);
      expect(compileMatch(match({ models: ['*'] }))(input()).matched).to.equal(false);
    });
  });

  describe('claims', () => {
    it('matches mapped user, groups and tenant, reporting the values used', () => {
      const m = compileMatch(
        match({ claims: { user: ['*@myorg.com'], groups: ['ml-*'], tenant: ['marketing'] } }),
      );
      const who = identity({ groups: ['staff', 'ml-team'], tenant: 'marketing' });
      expect(m(input({ identity: who }))).to.deep.equal({
        matched: true,
        claimsUsed: { user: 'alice@myorg.com', groups: 'ml-team', tenant: 'marketing' },
      });
    });

    it('requires every listed claim to match', () => {
      const m = compileMatch(match({ claims: { user: ['*@myorg.com'], groups: ['ml-team'] } }));
      expect(m(input({ identity: identity({ groups: ['staff'] }) })).matched).to.equal(false);
      expect(
        m(input({ identity: identity({ user: 'eve@evil.com', groups: ['ml-team'] }) })).matched,
      ).to.equal(false);
    });

    it('accepts any glob of a claim list', () => {
      const m = compileMatch(match({ claims: { groups: ['admins', 'ml-team'] } }));
      expect(m(input({ identity: identity({ groups: ['ml-team'] }) })).matched).to.equal(true);
      expect(m(input({ identity: identity({ groups: ['admins-readonly'] }) })).matched).to.equal(
        false,
      );
    });

    it('looks up other keys as claim paths: top-level, nested, namespaced, numeric', () => {
      const who = identity({
        claims: {
          email: 'bob@myorg.com',
          realm_access: { roles: ['offline', 'gpt-user'] },
          'https://myorg.com/groups': ['research'],
          org: { id: 42 },
        },
      });
      expect(
        compileMatch(match({ claims: { email: ['*@myorg.com'] } }))(input({ identity: who })),
      ).to.deep.equal({
        matched: true,
        claimsUsed: { email: 'bob@myorg.com' },
      });
      const roles = compileMatch(match({ claims: { 'realm_access.roles': ['gpt-*'] } }));
      expect(roles(input({ identity: who }))).to.deep.equal({
        matched: true,
        claimsUsed: { 'realm_access.roles': 'gpt-user' },
      });
      const ns = compileMatch(match({ claims: { '"https://myorg.com/groups"': ['research'] } }));
      expect(ns(input({ identity: who })).matched).to.equal(true);
      expect(
        compileMatch(match({ claims: { 'org.id': ['42'] } }))(input({ identity: who })).matched,
      ).to.equal(true);
    });

    it('never matches an absent claim, not even with *', () => {
      const who = identity({ claims: { email: 'a@b.c', nested: { obj: { deep: 1 } } } });
      for (const key of ['department', 'nested.missing', 'nested.obj', 'email.domain']) {
        expect(
          compileMatch(match({ claims: { [key]: ['*'] } }))(input({ identity: who })).matched,
          key,
        ).to.equal(false);
      }
      expect(compileMatch(match({ claims: { tenant: ['*'] } }))(input()).matched).to.equal(false);
      expect(compileMatch(match({ claims: { groups: ['*'] } }))(input()).matched).to.equal(false);
    });

    it('an empty claim list and an empty glob list match nothing', () => {
      expect(
        compileMatch(match({ claims: { groups: ['*'] } }))(
          input({ identity: identity({ groups: [] }) }),
        ).matched,
      ).to.equal(false);
      expect(compileMatch(match({ claims: { user: [] } }))(input()).matched).to.equal(false);
    });

    it('does not follow inherited properties', () => {
      // A computed key makes `__proto__` an own property, as YAML parsing would.
      for (const key of ['constructor', '__proto__', 'toString']) {
        expect(compileMatch(match({ claims: { [key]: ['*'] } }))(input()).matched, key).to.equal(
          false,
        );
      }
    });
  });

  describe('claimValues', () => {
    it('maps user, groups, tenant and claim paths to string lists', () => {
      const who = identity({
        groups: ['a', 'b'],
        tenant: 't1',
        claims: { scope: 'x', flags: [true, 2, { no: 1 }, null] },
      });
      expect(claimValues(who, 'user')).to.deep.equal(['alice@myorg.com']);
      expect(claimValues(who, 'groups')).to.deep.equal(['a', 'b']);
      expect(claimValues(who, 'tenant')).to.deep.equal(['t1']);
      expect(claimValues(identity(), 'tenant')).to.deep.equal([]);
      expect(claimValues(who, 'scope')).to.deep.equal(['x']);
      expect(claimValues(who, 'flags')).to.deep.equal(['true', '2']);
      expect(claimValues(who, 'missing')).to.deep.equal([]);
    });
  });
});
