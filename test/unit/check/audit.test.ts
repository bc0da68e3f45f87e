/**
 * The decision audit line as pino writes it: every field an operator joins on, the claims the
 * deciding rule used, per-stage timings, sampling of allowed lines, and nothing secret.
 */
import { expect } from 'chai';
import { decisionLine, shouldWrite } from '../../../src/check/audit.js';
import { chat, config, gateway, identity, memoryTracing } from '../telemetry/helpers.js';

describe('check/audit: the decision line', () => {
  it('has identity, request, decision, deciding rule with its claims, and stage timings for an allow', async () => {
    const { gateway: gw, lines } = gateway();
    await gw.decide(chat('ann', 'gpt-4o'));
    expect(lines).to.have.length(1);
    const line = lines[0]!;
    expect(line).to.include({
      audit: 'decision',
      level: 'info',
      requestId: 'req-ann-gpt-4o',
      provider: 'main-idp',
      subject: 'sub-1',
      user: 'ann@myorg.com',
      email: 'ann@myorg.com',
      tenant: 'acme',
      method: 'POST',
      path: '/v1/chat/completions',
      model: 'gpt-4o',
      decision: 'allow',
      status: 200,
      reason: 'allowed',
      rule: 'ml-team-gpt4o',
    });
    expect(line['groups']).to.deep.equal(['eng', 'ml-team']);
    expect(line['claimsUsed']).to.deep.equal({ groups: 'ml-team' });
    expect(line['latencyMs']).to.be.a('number').at.least(0);
    expect(Object.keys(line['stages'] as object)).to.deep.equal([
      'authenticate',
      'authorize',
      'admit',
    ]);
    expect(line).not.to.have.property('traceId');
  });

  it('names the denying rule, and `default` when no rule decided', async () => {
    const { gateway: gw, lines } = gateway();
    await gw.decide(chat('bob', 'gpt-4o'));
    await gw.decide(chat('bob', 'o3-mini'));
    expect(lines[0]).to.include({
      decision: 'deny',
      status: 403,
      reason: 'model_not_allowed',
      rule: 'nobody-else-gpt4o',
    });
    expect(lines[0]).not.to.have.property('claimsUsed'); // that rule names no claims
    expect(lines[0]!['stages']).to.have.keys('authenticate', 'authorize');
    expect(lines[1]).to.include({ decision: 'allow', rule: 'default' });
    expect(lines[1]!['claimsUsed']).to.deep.equal({});
  });

  it('names the claims a denying rule matched on', async () => {
    const base = config();
    const noSales = {
      name: 'no-sales',
      match: { claims: { groups: ['sales'] } },
      action: 'deny' as const,
      mode: 'enforce' as const,
    };
    const cfg = config({
      authorization: { ...base.authorization, rules: [noSales, ...base.authorization.rules] },
    });
    const { gateway: gw, lines } = gateway({}, cfg);
    await gw.decide(chat('bob', 'o3-mini'));
    expect(lines[0]).to.include({
      decision: 'deny',
      status: 403,
      reason: 'access_denied',
      rule: 'no-sales',
    });
    expect(lines[0]!['claimsUsed']).to.deep.equal({ groups: 'sales' });
  });

  it('writes an authentication failure with its reason and no identity', async () => {
    const { gateway: gw, lines } = gateway();
    await gw.decide(chat('mallory'));
    expect(lines[0]).to.include({ decision: 'deny', status: 401, reason: 'bad_signature' });
    expect(lines[0]).not.to.have.property('subject');
    expect(lines[0]!['stages']).to.have.keys('authenticate');
  });

  it('carries the trace id when tracing is on', async () => {
    const { tracing } = memoryTracing();
    const { gateway: gw, lines } = gateway({ tracing });
    await gw.decide(
      chat('ann', 'o3-mini', {
        traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      }),
    );
    expect(lines[0]).to.include({ traceId: '0af7651916cd43dd8448eb211c80319c' });
  });

  it('never contains the bearer token, the prompt or the body, whatever the request carries', async () => {
    const { gateway: gw, raw } = gateway();
    const request = chat('ann', 'gpt-4o', {
      cookie: 'session=s3cr3t',
      'x-api-key': 'sk-client-key',
    });
    await gw.decide(request);
    await gw.decide({
      ...chat('mallory'),
      headers: { authorization: 'Bearer eyJhbGciOiJSUzI1NiJ9.secret.sig' },
    });
    const text = raw.join('\n');
    for (const secret of [
      'Bearer ann',
      'eyJhbGciOiJSUzI1NiJ9',
      'the secret prompt',
      's3cr3t',
      'sk-client-key',
      'max_tokens',
    ]) {
      expect(text).not.to.contain(secret);
    }
  });
});

describe('check/audit: logging.sampleAllowed', () => {
  it('writes a fraction of allowed decisions, every denial and every shadow denial', async () => {
    let i = 0;
    const draws = [0.1, 0.9, 0.2, 0.8];
    const cfg = config({ logging: { level: 'info', sampleAllowed: 0.5 } });
    const { gateway: gw, lines } = gateway({ random: () => draws[i++ % draws.length]! }, cfg);
    for (let n = 0; n < 4; n++) await gw.decide(chat('ann', 'o3-mini'));
    await gw.decide(chat('bob', 'gpt-4o'));
    expect(lines.map((l) => l['decision'])).to.deep.equal(['allow', 'allow', 'deny']);
  });

  it('0 keeps only denials; absent or 1 keeps everything without drawing', async () => {
    const none = gateway({}, config({ logging: { level: 'info', sampleAllowed: 0 } }));
    await none.gateway.decide(chat('ann', 'o3-mini'));
    await none.gateway.decide(chat('mallory'));
    expect(none.lines.map((l) => l['decision'])).to.deep.equal(['deny']);
    const all = gateway({
      random: () => {
        throw new Error('must not draw');
      },
    });
    await all.gateway.decide(chat('ann', 'o3-mini'));
    expect(all.lines).to.have.length(1);
  });

  it('shouldWrite keeps shadow denials even when sampling drops every allow', () => {
    const allow = {
      allow: {
        identity: identity(),
        setHeaders: {},
        removeHeaders: [],
        responseHeaders: {},
        metadata: {},
      },
    };
    const shadow = {
      allow: { ...allow.allow, shadowDenied: { rule: 'r', reason: 'access_denied' as const } },
    };
    expect(shouldWrite(allow, 0, () => 0)).to.equal(false);
    expect(shouldWrite(shadow, 0, () => 0.99)).to.equal(true);
  });

  it('decisionLine rounds timings to microseconds', () => {
    const line = decisionLine(
      { id: 'r', method: 'GET', path: '/v1/models', headers: {} },
      {
        allow: {
          identity: identity(),
          setHeaders: {},
          removeHeaders: [],
          responseHeaders: {},
          metadata: {},
        },
      },
      { model: undefined, latencyMs: 1.23456789, stages: { authenticate: 0.0004444 } },
    );
    expect(line).to.include({ latencyMs: 1.235 });
    expect(line['stages']).to.deep.equal({ authenticate: 0 });
  });
});
