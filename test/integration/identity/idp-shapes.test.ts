/**
 * Claim mapping against the token shapes real IdPs issue. Each token is genuinely signed by
 * a DevIssuer, so the mapping is exercised through the full verification path.
 */
import { expect } from 'chai';
import type { ClaimMapping } from '../../../src/config/schema.js';
import { DevIssuer } from '../../../src/dev/issuer.js';
import { Authenticator } from '../../../src/identity/verify.js';
import type { Identity } from '../../../src/domain/identity.js';
import { testProvider } from '../../helpers/tokens.js';

describe('identity: claim mapping for real IdP token shapes', () => {
  let issuer: DevIssuer;

  before(async () => {
    issuer = await DevIssuer.start();
  });

  after(async () => {
    await issuer?.close();
  });

  async function identityOf(
    claims: Record<string, unknown>,
    mapping: Partial<ClaimMapping>,
  ): Promise<Identity> {
    const base = testProvider(issuer);
    const auth = new Authenticator([
      testProvider(issuer, { claims: { ...base.claims, ...mapping } }),
    ]);
    return auth.authenticate(`Bearer ${await issuer.mint(claims)}`);
  }

  describe('Keycloak', () => {
    const keycloak = {
      sub: 'f1b2c3d4-0000-4000-8000-000000000001',
      preferred_username: 'alice',
      email: 'alice@myorg.com',
      email_verified: true,
      realm_access: { roles: ['offline_access', 'ml-team'] },
      resource_access: {
        'tollgate.gateway': { roles: ['gpt4-user'] },
        account: { roles: ['view-profile'] },
      },
      groups: ['/team/ml', '/eng/platform'],
      organization: 'marketing',
    };

    it('reads realm roles by dot path', async () => {
      const id = await identityOf(keycloak, {
        groups: 'realm_access.roles',
        tenant: 'organization',
      });
      expect(id.groups).to.deep.equal(['offline_access', 'ml-team']);
      expect(id).to.include({
        user: 'alice@myorg.com',
        tenant: 'marketing',
        subject: keycloak.sub,
      });
    });

    it('reads client roles under a client id that contains a dot', async () => {
      const id = await identityOf(keycloak, { groups: 'resource_access."tollgate.gateway".roles' });
      expect(id.groups).to.deep.equal(['gpt4-user']);
    });

    it('keeps full group paths', async () => {
      const id = await identityOf(keycloak, { user: 'preferred_username' });
      expect(id.groups).to.deep.equal(['/team/ml', '/eng/platform']);
      expect(id.user).to.equal('alice');
    });
  });

  it('Entra ID: roles, group object ids and tid as tenant', async () => {
    const entra = {
      sub: 'AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ',
      oid: '00000000-0000-0000-66f3-3332eca7ea81',
      tid: '9188040d-6c67-4c5b-b112-36a304b66dad',
      preferred_username: 'alice@myorg.onmicrosoft.com',
      roles: ['Gateway.GPT4'],
      groups: ['a1b2c3d4-0000-0000-0000-000000000001', 'a1b2c3d4-0000-0000-0000-000000000002'],
    };
    const byRoles = await identityOf(entra, {
      user: 'preferred_username',
      groups: 'roles',
      tenant: 'tid',
    });
    expect(byRoles).to.include({ user: 'alice@myorg.onmicrosoft.com', tenant: entra.tid });
    expect(byRoles.groups).to.deep.equal(['Gateway.GPT4']);
    const byGroups = await identityOf(entra, { user: 'oid', tenant: 'tid' });
    expect(byGroups.user).to.equal(entra.oid);
    expect(byGroups.groups).to.deep.equal(entra.groups);
  });

  it('Okta: groups claim and an email-like sub', async () => {
    const okta = {
      sub: 'alice@myorg.com',
      uid: '00u1abcd',
      cid: '0oa1client',
      groups: ['Everyone', 'ML Team'],
      tenant_id: 'eu',
    };
    const id = await identityOf(okta, { user: 'email' });
    expect(id).to.include({ user: 'alice@myorg.com', subject: 'alice@myorg.com', tenant: 'eu' });
    expect(id.groups).to.deep.equal(['Everyone', 'ML Team']);
  });

  describe('Auth0 namespaced claims', () => {
    const auth0 = {
      sub: 'auth0|65f0c0ffee',
      'https://myorg.com/groups': ['ml-team'],
      'https://myorg.com/tenant': 'marketing',
      'https://myorg.com': { groups: ['nested-ml'] },
      email: 'alice@myorg.com',
    };

    it('reads a namespaced claim quoted or unquoted', async () => {
      const quoted = await identityOf(auth0, {
        groups: '"https://myorg.com/groups"',
        tenant: '"https://myorg.com/tenant"',
      });
      expect(quoted.groups).to.deep.equal(['ml-team']);
      expect(quoted.tenant).to.equal('marketing');
      const unquoted = await identityOf(auth0, { groups: 'https://myorg.com/groups' });
      expect(unquoted.groups).to.deep.equal(['ml-team']);
    });

    it('reads into a namespace object with a quoted first segment', async () => {
      const id = await identityOf(auth0, { groups: '"https://myorg.com".groups' });
      expect(id.groups).to.deep.equal(['nested-ml']);
    });
  });

  describe('Google', () => {
    const google = {
      sub: '110169484474386276334',
      email: 'alice@myorg.com',
      hd: 'myorg.com',
      email_verified: true,
    };

    it('uses hd as the tenant and a verified email as the user', async () => {
      const id = await identityOf(google, { tenant: 'hd' });
      expect(id).to.include({ user: 'alice@myorg.com', tenant: 'myorg.com', subject: google.sub });
      expect(id.groups).to.deep.equal([]);
    });

    it('ignores an email marked unverified and falls back to sub', async () => {
      const id = await identityOf({ ...google, email_verified: false }, { tenant: 'hd' });
      expect(id.user).to.equal(google.sub);
      const legacy = await identityOf({ ...google, email_verified: 'false' }, {});
      expect(legacy.user).to.equal(google.sub);
    });
  });

  it('takes the first element of a list-valued tenant claim and stringifies scalars', async () => {
    const id = await identityOf(
      { sub: 's', tenants: ['t1', 't2'], groups: 'single-group' },
      { tenant: 'tenants' },
    );
    expect(id.tenant).to.equal('t1');
    expect(id.groups).to.deep.equal(['single-group']);
  });
});
