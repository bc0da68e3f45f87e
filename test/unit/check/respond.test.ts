/**
 * What an allowed request carries upstream: identity headers from the verified identity, and
 * the upstream key (per tenant when it has its own) in place of the caller's credentials.
 */
import { expect } from 'chai';
import { Responder } from '../../../src/check/respond.js';
import { testConfig } from '../../helpers/unit.js';
import { identity } from '../budgets/helpers.js';

const HEADERS = { 'x-user-id': 'user', 'x-tenant-id': 'tenant', 'x-user-groups': 'groups', 'x-team': 'team' };

function responder(): Responder {
  return new Responder(testConfig({ identityHeaders: HEADERS }), {
    apiKey: 'sk-default',
    tenants: { acme: { apiKey: 'sk-acme', project: 'proj_acme', organization: 'org_acme' } },
  });
}

describe('check/respond: Responder', () => {
  it('sets the identity headers it has claims for and removes the others', () => {
    const headers = responder().identityHeaders(identity({ claims: { team: 'ml/core' } }));
    expect(headers.set).to.deep.equal({
      'x-user-id': 'ann@myorg.com',
      'x-tenant-id': 'acme',
      'x-user-groups': 'eng,ml-team',
      'x-team': 'ml/core',
    });
    expect(headers.remove).to.deep.equal([]);
    const bare = responder().identityHeaders(identity({ tenant: undefined, groups: [] }));
    expect(bare.set).to.deep.equal({ 'x-user-id': 'ann@myorg.com' });
    expect(bare.remove).to.deep.equal(['x-tenant-id', 'x-user-groups', 'x-team']);
  });

  it('answers the same identity with the same headers, and other identities with their own', () => {
    const r = responder();
    const ann = identity();
    expect(r.identityHeaders(ann)).to.equal(r.identityHeaders(ann));
    expect(r.identityHeaders(identity({ user: 'bob@myorg.com' })).set['x-user-id']).to.equal('bob@myorg.com');
  });

  it("puts a tenant's own key, project and organization upstream", () => {
    const headers = responder().credentialHeaders(identity({ tenant: 'acme' }));
    expect(headers.set).to.deep.equal({
      authorization: 'Bearer sk-acme',
      'openai-project': 'proj_acme',
      'openai-organization': 'org_acme',
    });
    expect(headers.remove).to.deep.equal([]);
  });

  it('gives every other caller the default key and removes the project and organization they send', () => {
    const r = responder();
    for (const tenant of ['globex', undefined, 'constructor', '__proto__', 'hasOwnProperty']) {
      const headers = r.credentialHeaders(identity({ tenant }));
      expect(headers.set, String(tenant)).to.deep.equal({ authorization: 'Bearer sk-default' });
      expect(headers.remove, String(tenant)).to.deep.equal(['openai-project', 'openai-organization']);
    }
  });

  it('removes the authorization header when no key is configured', () => {
    const r = new Responder(testConfig({ identityHeaders: HEADERS }), { tenants: {} });
    const headers = r.credentialHeaders(identity());
    expect(headers.set).to.deep.equal({});
    expect(headers.remove).to.deep.equal(['authorization', 'openai-project', 'openai-organization']);
  });
});
