/**
 * `GET /v1/models` per caller through real Envoy: ext_proc cuts the upstream's list down to the
 * models each caller's authorization rules allow, with the openai SDK as the client.
 */
import { expect } from 'chai';
import OpenAI from 'openai';
import { DEV_MODELS } from '../../src/dev/upstream.js';
import { baseConfig, withStack } from '../helpers/e2e.js';

const RULES = `
authorization:
  default: allow
  rules:
    - name: ml-team-may-use-reasoning
      match: { models: ["o3*"], claims: { groups: ml-team } }
      action: allow
    - name: nobody-else-reasoning
      match: { models: ["o3*"] }
      action: deny
    - name: contractors-no-gpt4
      match: { models: ["gpt-4*"], claims: { email: "*@contractors.example" } }
      action: deny
`;

describe('e2e: GET /v1/models per caller', function () {
  this.timeout(60000);
  const e2e = withStack((issuer) => baseConfig({ issuer, extra: RULES }));

  const token = (claims: Record<string, unknown>) =>
    e2e.issuer.mint({ sub: String(claims['email']), ...claims });
  const ML = { email: 'ada@myorg.com', groups: ['ml-team'] };
  const SALES = { email: 'bob@myorg.com', groups: ['sales'] };
  const CONTRACTOR = { email: 'eve@contractors.example', groups: ['ml-team'] };

  async function listed(
    claims: Record<string, unknown>,
    headers: Record<string, string> = {},
  ): Promise<string[]> {
    const client = new OpenAI({
      baseURL: `${e2e.stack.ready.envoy}/v1`,
      apiKey: await token(claims),
      maxRetries: 0,
      timeout: 10000,
    });
    const ids: string[] = [];
    for await (const model of client.models.list({ headers })) ids.push(model.id);
    return ids;
  }

  it('shows each caller only the models its rules allow', async () => {
    expect(await listed(ML)).to.deep.equal(DEV_MODELS);
    expect(await listed(SALES)).to.deep.equal(DEV_MODELS.filter((m) => m !== 'o3-mini'));
    expect(await listed(CONTRACTOR)).to.deep.equal(['o3-mini', 'text-embedding-3-small']);
  });

  it('filters a gzip-encoded list too, and the client reads it', async () => {
    expect(await listed(SALES, { 'x-dev-gzip': '1' })).to.deep.equal(
      DEV_MODELS.filter((m) => m !== 'o3-mini'),
    );
  });

  it('sends a filtered list with a correct content-length, and an unfiltered one untouched', async () => {
    const get = async (claims: Record<string, unknown>) => {
      const res = await fetch(`${e2e.stack.ready.envoy}/v1/models`, {
        headers: { authorization: `Bearer ${await token(claims)}` },
      });
      const body = Buffer.from(await res.arrayBuffer());
      return { status: res.status, length: res.headers.get('content-length'), body };
    };
    const filtered = await get(CONTRACTOR);
    expect(filtered.status).to.equal(200);
    expect(filtered.length).to.equal(String(filtered.body.length));
    expect(JSON.parse(filtered.body.toString('utf8'))).to.deep.include({ object: 'list' });
    const full = await get(ML);
    expect(full.length).to.equal(String(full.body.length));
    expect(JSON.parse(full.body.toString('utf8')).data).to.have.length(DEV_MODELS.length);
  });

  it('lists exactly what the caller may call', async () => {
    // The list and ext_authz read the same rules: a listed model is served, an unlisted one refused.
    const client = new OpenAI({
      baseURL: `${e2e.stack.ready.envoy}/v1`,
      apiKey: await token(CONTRACTOR),
      maxRetries: 0,
    });
    const err = await client.chat.completions
      .create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).to.be.instanceOf(OpenAI.PermissionDeniedError);
    const ok = await client.chat.completions.create({
      model: 'o3-mini',
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(ok.choices).to.have.length(1);
  });
});
