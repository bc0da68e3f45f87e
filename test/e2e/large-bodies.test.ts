/**
 * Real request sizes (issue 12): vision requests with inline base64 images are routinely
 * several MB. With the default `server.maxRequestBytes` (72 MiB) they pass through real Envoy,
 * are judged and metered, and a budget's output limit is still written into them.
 */
import { expect } from 'chai';
import OpenAI from 'openai';
import { baseConfig, withStack } from '../helpers/e2e.js';

const IMAGE = `data:image/png;base64,${'iVBORw0KGgo'.repeat(Math.ceil((10 * 1024 * 1024) / 11))}`;

describe('e2e: large request bodies under the default limit', function () {
  this.timeout(60_000);
  const ctx = withStack((issuer) =>
    baseConfig({
      issuer,
      extra: `tokenBudgets:
  - { tenant: acme, maxTokens: 100000000, period: day }
authorization:
  default: allow
  rules:
    - { name: no-gpt-4o, match: { models: ["gpt-4o"] }, action: deny }
`,
    }),
  );

  const messages = (): OpenAI.ChatCompletionMessageParam[] => [
    { role: 'user', content: [{ type: 'text', text: 'What is in this image?' }, { type: 'image_url', image_url: { url: IMAGE } }] },
  ];

  it('judges, forwards and meters a 10 MB vision request, writing the output limit into it', async () => {
    const token = await ctx.issuer.mint({ sub: 'ann', tenant_id: 'acme' });
    const client = new OpenAI({ baseURL: `${ctx.stack.ready.envoy}/v1`, apiKey: token, maxRetries: 0 });
    const before = ctx.upstream.received.length;
    const res = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: messages() });
    expect(res.usage?.total_tokens).to.be.above(0);
    const got = ctx.upstream.received.slice(before);
    expect(got).to.have.length(1);
    const sent = JSON.parse(got[0]?.body ?? '{}') as { max_completion_tokens?: number; messages: unknown[] };
    expect(got[0]?.rawBody.length).to.be.above(10 * 1024 * 1024);
    expect(sent.max_completion_tokens).to.be.a('number');
    // Every other byte is the client's: the image arrives intact.
    expect(JSON.stringify(sent.messages)).to.contain(IMAGE.slice(-64));
    // And a 10 MB body is still judged: the rule sees its model.
    const denied = await client.chat.completions.create({ model: 'gpt-4o', messages: messages() }).catch((e: unknown) => e);
    expect(denied).to.be.instanceOf(OpenAI.PermissionDeniedError);
  });

  it('streams a 10 MB request: include_usage injected, the usage chunk never seen, usage charged', async () => {
    const token = await ctx.issuer.mint({ sub: 'bob', tenant_id: 'acme' });
    const client = new OpenAI({ baseURL: `${ctx.stack.ready.envoy}/v1`, apiKey: token, maxRetries: 0 });
    const chunks = [];
    for await (const chunk of await client.chat.completions.create({ model: 'gpt-4o-mini', messages: messages(), stream: true })) chunks.push(chunk);
    expect(chunks.length).to.be.above(1);
    expect(chunks.filter((c) => c.usage)).to.deep.equal([]);
    const deadline = Date.now() + 10_000;
    let line: Record<string, unknown> | undefined;
    while (line === undefined && Date.now() < deadline) {
      line = ctx.stack.logLines().find((l) => l['audit'] === 'usage' && l['subject'] === 'bob');
      if (line === undefined) await new Promise((r) => setTimeout(r, 50));
    }
    expect(line).to.deep.include({ source: 'provider', settled: true });
  });
});
