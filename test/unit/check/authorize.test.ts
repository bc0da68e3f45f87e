import { expect } from 'chai';
import { AuthorizeStep } from '../../../src/check/authorize.js';
import { allowedModels } from '../../../src/policy/rules.js';

import type { Denial } from '../../../src/domain/decision.js';
import { authorizeWith, authz, context, identity, rule, type AuthorizeResult } from '../policy/helpers.js';

function denial(result: AuthorizeResult): Denial {
  if (!('deny' in result)) throw new Error(`expected a denial, got ${JSON.stringify(result)}`);
  return result.deny;
}

function grant(result: AuthorizeResult): { metadata: Readonly<Record<string, unknown>> } {
  if (!('ok' in result)) throw new Error(`expected an allow, got ${JSON.stringify(result)}`);
  return result.ok;
}

// The example from DESIGN section 2.
const designExample = authz([
  rule('ml-team-may-use-gpt4', 'allow', {
    path: '/v1/chat/completions',
    models: ['gpt-4o*'],
    claims: { groups: ['ml-team'] },
  }),
  rule('nobody-else-gpt4', 'deny', { models: ['gpt-4o*'] }),
]);
const mlTeam = identity({ groups: ['ml-team'] });
const sales = identity({ user: 'sam@myorg.com', groups: ['sales'] });

describe('check/authorize', () => {
  it('first matching rule wins: the ML team may use gpt-4o', () => {
    const stage = new AuthorizeStep(designExample);
    const ok = grant(
      authorizeWith(stage, context({ who: mlTeam, model: 'gpt-4o-mini' })),
    );
    expect(ok.metadata).to.deep.equal({
      authz: { matchedRule: 'ml-team-may-use-gpt4', claimsUsed: { groups: 'ml-team' } },
    });
  });

  it('a deny rule with models answers model_not_allowed naming the rule and the model', () => {
    const stage = new AuthorizeStep(designExample);
    const d = denial(authorizeWith(stage, context({ who: sales, model: 'gpt-4o' })));
    expect(d.status).to.equal(403);
    expect(d.reason).to.equal('model_not_allowed');
    expect(d.type).to.equal('permission_denied');
    expect(d.code).to.equal('model_not_allowed');
    expect(d.rule).to.equal('nobody-else-gpt4');
    expect(d.message).to.contain('"gpt-4o"').and.to.contain('nobody-else-gpt4');
  });

  it('requests matching no rule fall to the default', () => {
    const stage = new AuthorizeStep(designExample);
    const ok = grant(
      authorizeWith(stage, context({ who: sales, model: 'gpt-3.5-turbo' })),
    );
    expect(ok.metadata).to.deep.equal({ authz: { matchedRule: null, claimsUsed: {} } });
    // A request without a model is not caught by model rules either.
    grant(
      authorizeWith(stage, context({ who: sales, path: '/v1/models', method: 'GET' })),
    );
  });

  it('default deny answers access_denied with rule "default"', () => {
    const config = authz([rule('staff', 'allow', { claims: { user: ['*@myorg.com'] } })], {
      default: 'deny',
    });
    const stage = new AuthorizeStep(config);
    grant(authorizeWith(stage, context()));
    const d = denial(authorizeWith(stage, context({ who: identity({ user: 'eve@evil.com' }) })));
    expect(d).to.include({
      status: 403,
      reason: 'access_denied',
      code: 'access_denied',
      rule: 'default',
    });
    expect(d.message).to.contain('no authorization rule allows');
  });

  it('a deny rule without models answers access_denied naming the rule', () => {
    const config = authz([
      rule('contractors-out', 'deny', { claims: { groups: ['contractors'] } }),
    ]);
    const d = denial(
      authorizeWith(new AuthorizeStep(config), 
        context({ who: identity({ groups: ['contractors'] }), model: 'gpt-4o' }),
      ),
    );
    expect(d).to.include({ reason: 'access_denied', rule: 'contractors-out' });
    expect(d.message).to.contain('"contractors-out"');
  });

  it('respects rule order: an earlier deny beats a later allow', () => {
    const config = authz(
      [rule('block-embeddings', 'deny', { path: '/v1/embeddings' }), rule('everyone', 'allow', {})],
      { default: 'deny' },
    );
    const stage = new AuthorizeStep(config);
    expect(denial(authorizeWith(stage, context({ path: '/v1/embeddings' }))).rule).to.equal(
      'block-embeddings',
    );
    expect(grant(authorizeWith(stage, context())).metadata).to.deep.include({
      authz: { matchedRule: 'everyone', claimsUsed: {} },
    });
  });

  it('caps a huge caller-supplied model in the message', () => {
    const config = authz([rule('no', 'deny', { models: ['*'] })]);
    const d = denial(
      authorizeWith(new AuthorizeStep(config), context({ model: 'x'.repeat(10_000) })),
    );
    expect(d.message.length).to.be.lessThan(300);
  });

  describe('shadow', () => {
    it('a shadow deny rule records the would-be denial and evaluation continues', () => {
      const config = authz(
        [
          rule('trial-block-gpt4', 'deny', { models: ['gpt-4o*'] }, 'shadow'),
          rule('ml-only', 'allow', { claims: { groups: ['ml-team'] } }),
        ],
        { default: 'deny' },
      );
      const stage = new AuthorizeStep(config);
      const ok = grant(authorizeWith(stage, context({ who: mlTeam, model: 'gpt-4o' })));
      expect(ok.metadata).to.deep.equal({
        authz: { matchedRule: 'ml-only', claimsUsed: { groups: 'ml-team' } },
        shadowDenied: { rule: 'trial-block-gpt4', reason: 'model_not_allowed' },
      });
      // The enforced default still decides for everyone else, with no shadow record.
      const d = denial(authorizeWith(stage, context({ who: sales, model: 'gpt-4o' })));
      expect(d.rule).to.equal('default');
    });

    it('a shadow allow rule never decides', () => {
      const config = authz([rule('maybe-allow', 'allow', {}, 'shadow')], { default: 'deny' });
      expect(denial(authorizeWith(new AuthorizeStep(config), context())).rule).to.equal(
        'default',
      );
    });

    it('a shadow rule that does not match records nothing', () => {
      const config = authz([
        rule('trial', 'deny', { claims: { groups: ['contractors'] } }, 'shadow'),
      ]);
      const ok = grant(authorizeWith(new AuthorizeStep(config), context({ who: mlTeam })));
      expect(ok.metadata).to.not.have.property('shadowDenied');
    });

    it('authorization.mode shadow allows what enforce mode would deny and records it', () => {
      const config = authz([...designExample.rules], { mode: 'shadow', default: 'deny' });
      const stage = new AuthorizeStep(config);
      const ok = grant(authorizeWith(stage, context({ who: sales, model: 'gpt-4o' })));
      expect(ok.metadata).to.deep.equal({
        authz: { matchedRule: 'nobody-else-gpt4', claimsUsed: {} },
        shadowDenied: { rule: 'nobody-else-gpt4', reason: 'model_not_allowed' },
      });
      const byDefault = grant(
        authorizeWith(stage, context({ who: sales, model: 'gpt-3.5-turbo' })),
      );
      expect(byDefault.metadata).to.deep.include({
        shadowDenied: { rule: 'default', reason: 'access_denied' },
      });
      const allowed = grant(authorizeWith(stage, context({ who: mlTeam, model: 'gpt-4o' })));
      expect(allowed.metadata).to.not.have.property('shadowDenied');
    });
  });

  describe('allowedModels', () => {
    const candidates = ['gpt-4o', 'gpt-4o-mini', 'gpt-3.5-turbo', 'o1'];

    it('filters the model list per caller as a chat completion would be judged', () => {
      expect(allowedModels(designExample, mlTeam, candidates)).to.deep.equal(candidates);
      expect(allowedModels(designExample, sales, candidates)).to.deep.equal([
        'gpt-3.5-turbo',
        'o1',
      ]);
    });

    it('honours path-specific rules and default deny', () => {
      const config = authz(
        [
          rule('embeddings-only-model', 'allow', { path: '/v1/embeddings', models: ['*'] }),
          rule('small-models', 'allow', { path: '/v1/chat/*', models: ['*-mini', 'gpt-3.5*'] }),
        ],
        { default: 'deny' },
      );
      expect(allowedModels(config, sales, candidates)).to.deep.equal([
        'gpt-4o-mini',
        'gpt-3.5-turbo',
      ]);
      expect(new AuthorizeStep(config).allowedModels(sales, candidates)).to.deep.equal([
        'gpt-4o-mini',
        'gpt-3.5-turbo',
      ]);
    });

    it('lists every model in shadow mode, since every model would be served', () => {
      const config = authz([...designExample.rules], { mode: 'shadow' });
      expect(allowedModels(config, sales, candidates)).to.deep.equal(candidates);
    });
  });
});

describe('check/authorize: indirect model work (DESIGN 1.8)', () => {
  const batches = { path: '/v1/batches', method: 'POST' };

  it('default: allow does not open an indirect endpoint when rules judge models', () => {
    const d = denial(authorizeWith(new AuthorizeStep(designExample), context({ who: sales, ...batches })));
    expect(d).to.include({ status: 403, reason: 'access_denied', code: 'access_denied', rule: 'indirect-endpoint' });
    expect(d.message).to.contain('POST /v1/batches').and.to.contain('explicitly');
    for (const path of ['/v1/realtime/client_secrets', '/v1/audio/transcriptions', '/v1/unknown-endpoint', '/V1/Batches']) {
      denial(authorizeWith(new AuthorizeStep(designExample), context({ who: sales, path, method: 'POST' })));
    }
  });

  it('nor when token budgets are configured, even without model rules', () => {
    const open = authz([]);
    denial(authorizeWith(new AuthorizeStep(open, { budgets: true }), context(batches)));
    // Nothing to walk around: no model rules, no budgets.
    grant(authorizeWith(new AuthorizeStep(open), context(batches)));
  });

  it('a rule that matches the request opens it, and default: deny stays the default denial', () => {
    const config = authz([rule('ml-may-batch', 'allow', { path: '/v1/batches*', claims: { groups: ['ml-team'] } }), ...designExample.rules]);
    const ok = grant(authorizeWith(new AuthorizeStep(config), context({ who: mlTeam, ...batches })));
    expect(ok.metadata).to.deep.include({ authz: { matchedRule: 'ml-may-batch', claimsUsed: { groups: 'ml-team' } } });
    denial(authorizeWith(new AuthorizeStep(config), context({ who: sales, ...batches })));
    const closed = authz([...designExample.rules], { default: 'deny' });
    expect(denial(authorizeWith(new AuthorizeStep(closed), context({ who: sales, ...batches }))).rule).to.equal('default');
  });

  it('plain and metered endpoints keep default: allow', () => {
    grant(authorizeWith(new AuthorizeStep(designExample), context({ who: sales, path: '/v1/files', method: 'POST' })));
    grant(authorizeWith(new AuthorizeStep(designExample), context({ who: sales, path: '/v1/batches/b_1', method: 'GET' })));
  });

  it('in shadow mode the refusal is recorded, not enforced', () => {
    const shadow = authz([...designExample.rules], { mode: 'shadow' });
    const ok = grant(authorizeWith(new AuthorizeStep(shadow), context({ who: sales, ...batches })));
    expect(ok.metadata).to.deep.include({ shadowDenied: { rule: 'indirect-endpoint', reason: 'access_denied' } });
  });
});
