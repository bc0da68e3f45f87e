import { expect } from 'chai';
import { decodeHandoff, encodeHandoff, type Handoff } from '../../../src/handoff/handoff.js';
import { encodeClaimList } from '../../../src/identity/claims.js';

const HANDOFF: Handoff = {
  id: '6f1c3a52-9d1e-4b47-8d61-2b0b6d9c5a10',
  requestId: 'req-1',
  identity: {
    provider: 'okta',
    issuer: '',
    subject: 'u-1',
    user: 'ann@acme.example',
    groups: ['ml,research', 'José'],
    tenant: 'ml',
    claims: { 'realm_access.roles': ['admin'] },
    expiresAt: 0,
  },
  method: 'POST',
  path: '/v1/chat/completions',
  model: 'gpt-4o-mini',
  promptEstimate: 12,
  reservation: {
    id: '6f1c3a52-9d1e-4b47-8d61-2b0b6d9c5a10',
    budgets: [
      { key: 'tb:tenant:ml:2026-12', expiresAtMs: 1_798_761_600_000 },
      { key: 'tb:group:ml%2Cresearch:2026-12', expiresAtMs: 1_798_761_600_000 },
    ],
    names: ['tenant:ml', 'group:ml,research'],
    reserved: [212, 212],
  },
  outputLimit: 100,
  injectUsage: true,
  admittedAt: 1_796_000_000_123,
};

/** Through JSON, as Envoy's Struct carries the metadata from ext_authz to ext_proc. */
const viaEnvoy = (m: Record<string, unknown>) => JSON.parse(JSON.stringify(m)) as Record<string, unknown>;

describe('handoff: the Check to ext_proc, in metadata', () => {
  it('round-trips everything ext_proc needs', () => {
    const metadata = viaEnvoy(encodeHandoff(HANDOFF, encodeClaimList(HANDOFF.identity.groups)));
    expect(decodeHandoff(metadata)).to.deep.equal(HANDOFF);
    // The access log's keys stay where they were.
    expect(metadata).to.include({ requestId: 'req-1', subject: 'u-1', user: 'ann@acme.example', provider: 'okta', tenant: 'ml', model: 'gpt-4o-mini', admission: HANDOFF.id, groups: 'ml%2Cresearch,Jos%C3%A9' });
  });

  it('is small: a few hundred bytes for a request with two budgets', () => {
    const size = JSON.stringify(encodeHandoff(HANDOFF, encodeClaimList(HANDOFF.identity.groups))).length;
    expect(size).to.be.below(700);
  });

  it('reads no hand-off from metadata it did not write: nothing is metered rather than guessed', () => {
    const good = viaEnvoy(encodeHandoff(HANDOFF, ''));
    const details = good['handoff'] as Record<string, unknown>;
    for (const metadata of [
      {},
      { admission: HANDOFF.id },
      { ...good, admission: '' },
      { ...good, handoff: 'x' },
      { ...good, handoff: { ...details, m: 1 } },
      { ...good, handoff: { ...details, at: -1 } },
      { ...good, handoff: { ...details, r: [['tb:x', 1, 'many', 'n']] } },
      { ...good, handoff: { ...details, r: 'tb:x' } },
    ]) {
      expect(decodeHandoff(metadata), JSON.stringify(metadata).slice(0, 80)).to.equal(undefined);
    }
  });

  it('round-trips a cost budget: its counter marked `usd` and the price it was admitted at', () => {
    const base = HANDOFF.reservation;
    if (base === undefined) throw new Error('fixture has a reservation');
    const priced: Handoff = {
      ...HANDOFF,
      reservation: {
        ...base,
        budgets: [...base.budgets, { key: 'tc:tenant:ml:2026-12', expiresAtMs: 1_798_761_600_000 }],
        names: [...base.names, 'tenant:ml'],
        reserved: [...base.reserved, 2_541],
        units: ['tokens', 'tokens', 'usd'],
      },
      price: { input: 150_000, cachedInput: 75_000, output: 600_000 },
    };
    const metadata = viaEnvoy(encodeHandoff(priced, ''));
    expect(decodeHandoff(metadata)).to.deep.equal({ ...priced, identity: { ...priced.identity, groups: [] } });
    const details = metadata['handoff'] as Record<string, unknown>;
    expect(details['r']).to.deep.include(['tc:tenant:ml:2026-12', 1_798_761_600_000, 2_541, 'tenant:ml', 'usd']);
    // A cost counter without its price cannot be settled; an unknown unit or price is not ours.
    const bad: Record<string, unknown>[] = [
      { ...details, pr: undefined },
      { ...details, pr: { i: 1 } },
      { ...details, pr: { i: 1, o: -2 } },
      { ...details, r: [['tc:x', 1, 2, 'n', 'eur']] },
    ];
    for (const handoff of bad) {
      expect(decodeHandoff({ ...metadata, handoff: viaEnvoy(handoff) }), JSON.stringify(handoff)).to.equal(undefined);
    }
  });

  it("round-trips a background request's output", () => {
    const background: Handoff = { ...HANDOFF, backgroundOutput: 300 };
    expect(decodeHandoff(viaEnvoy(encodeHandoff(background, '')))?.backgroundOutput).to.equal(300);
  });

  it('keeps what it can do without: no model, no tenant, no reservation, no limit', () => {
    const minimal: Handoff = {
      id: HANDOFF.id,
      requestId: 'req-2',
      identity: { provider: 'okta', issuer: '', subject: 'u-2', user: 'u-2', groups: [], claims: {}, expiresAt: 0 },
      method: 'GET',
      path: '/v1/models',
      promptEstimate: 0,
      injectUsage: false,
      admittedAt: 1,
    };
    expect(decodeHandoff(viaEnvoy(encodeHandoff(minimal, '')))).to.deep.equal(minimal);
  });
});
