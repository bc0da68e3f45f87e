/**
 * The ways around the rules, tried from outside through real Envoy (`tollgate stack`) as an
 * attacker would (README "Security model", DESIGN 1.8): every variant of a path is refused or
 * judged, metered and forwarded as the one canonical path; bodies whose label, encoding or
 * duplicates could be read differently upstream are refused; indirect model work needs an
 * explicit rule; the caller's token reaches the upstream nowhere; every response has an id.
 * The dev upstream records exactly what it received (target, headers, body bytes).
 */
import { gzipSync } from 'node:zlib';
import { expect } from 'chai';
import OpenAI from 'openai';
import type { ReceivedRequest } from '../../src/dev/upstream.js';
import { baseConfig, withStack } from '../helpers/e2e.js';
import { rawRequest, type RawResponse } from '../helpers/raw-http.js';

const CONFIG = `
identityHeaders:
  x-user-id: sub
  x-user-groups: groups
authorization:
  default: allow
  rules:
    - name: ml-may-batch
      match: { path: /v1/batches*, claims: { groups: ml } }
      action: allow
    - name: no-gpt-4o
      match: { models: ["gpt-4o"] }
      action: deny
    - name: no-embeddings-for-sales
      match: { path: /v1/embeddings, claims: { groups: sales } }
      action: deny
tokenBudgets:
  - { group: metered, maxTokens: 100000000, period: month }
`;

const CHAT = '/v1/chat/completions';
const EMBEDDINGS = '/v1/embeddings';

/** Spellings of `path` that a lenient parser reads as `path` (or that smuggle something in). */
function variants(path: string): string[] {
  const tail = path.slice('/v1/'.length);
  return [
    path,
    path.replace(/s$/, '%73'),
    path.replace(/^\/v1\/(.)/, (_m, c: string) => `/v1/%${c.charCodeAt(0).toString(16)}`),
    `/v1/./${tail}`,
    `/v1/files/../${tail}`,
    `/v1/x/%2e%2e/${tail}`,
    `/v1/%2E%2e/v1/${tail}`,
    `/v1/%2e/${tail}`,
    `/v1//${tail}`,
    `//v1/${tail}`,
    `${path}/`,
    `${path}/.`,
    `${path};x=1`,
    `/v1\\${tail.replace(/\//g, '\\')}`,
    `/v1/%5c${tail}`,
    `/v1%2f${tail}`,
    `/v1%2F${tail}`,
    `${path}%00`,
    `${path}%20`,
    `${path}#frag`,
    path.toUpperCase(),
    `http://evil.example${path}`,
  ];
}

type Log = Record<string, unknown>;

describe('e2e: security — one canonical request, no way around the rules', function () {
  this.timeout(60_000);
  // A small body limit, so Envoy's own 413 is cheap to provoke.
  const ctx = withStack((issuer) => baseConfig({ issuer, extra: CONFIG, server: 'maxRequestBytes: 1048576' }));
  const tokens: Record<string, string> = {};

  before(async () => {
    tokens['alice'] = await ctx.issuer.mint({ sub: 'alice', groups: ['metered'] });
    tokens['sam'] = await ctx.issuer.mint({ sub: 'sam', groups: ['sales', 'metered'] });
    tokens['ml'] = await ctx.issuer.mint({ sub: 'ml', groups: ['ml', 'metered'] });
  });

  const send = (
    who: string,
    method: string,
    target: string,
    body: string | Buffer = '',
    headers: Record<string, string> = {},
  ): Promise<RawResponse> =>
    rawRequest(
      ctx.stack.ready.envoy,
      method,
      target,
      { authorization: `Bearer ${tokens[who]}`, 'content-type': 'application/json', ...headers },
      body,
    );

  const chatBody = (model: string) =>
    JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] });
  const logs = (): Log[] => ctx.stack.logLines();
  const receivedFor = (id: string | undefined): ReceivedRequest[] =>
    id === undefined ? [] : ctx.upstream.received.filter((r) => r.headers['x-request-id'] === id);

  async function usageLine(requestId: string): Promise<Log> {
    const deadline = Date.now() + 5000;
    for (;;) {
      const line = logs().find((l) => l['audit'] === 'usage' && l['requestId'] === requestId);
      if (line !== undefined) return line;
      if (Date.now() > deadline) throw new Error(`no usage line for ${requestId}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  describe('paths', () => {
    it('a denied model never reaches the upstream, whatever the spelling of the path', async () => {
      for (const target of variants(CHAT)) {
        const before = ctx.upstream.received.length;
        const res = await send('alice', 'POST', target, chatBody('gpt-4o'));
        expect([400, 403], `${target} → ${res.status}`).to.include(res.status);
        expect(res.headers['x-tollgate-reason'], target).to.be.oneOf([
          'invalid_path',
          'model_not_allowed',
        ]);
        expect(res.headers['x-request-id'], target).to.be.a('string').and.not.equal('');
        expect(ctx.upstream.received.length, target).to.equal(before);
      }
    });

    it('a path rule holds for every spelling of its path', async () => {
      for (const target of variants(EMBEDDINGS)) {
        const before = ctx.upstream.received.length;
        const res = await send(
          'sam',
          'POST',
          target,
          JSON.stringify({ model: 'text-embedding-3-small', input: 'x' }),
        );
        expect([400, 403], `${target} → ${res.status}`).to.include(res.status);
        expect(ctx.upstream.received.length, target).to.equal(before);
      }
    });

    it('what is judged, metered and forwarded is one path: refused, or the same bytes everywhere', async () => {
      let forwarded = 0;
      for (const target of variants(CHAT)) {
        const res = await send('alice', 'POST', target, chatBody('gpt-4o-mini'));
        if (res.status === 400) {
          expect(res.headers['x-tollgate-reason'], target).to.equal('invalid_path');
          continue;
        }
        const id = res.headers['x-tollgate-request-id'];
        const decision = logs().find((l) => l['audit'] === 'decision' && l['requestId'] === id);
        const upstream = receivedFor(id);
        expect(decision, target).to.not.equal(undefined);
        expect(upstream, target).to.have.length(1);
        // The rule saw the path the upstream got, byte for byte.
        expect(upstream[0]?.path, target).to.equal(decision?.['path']);
        forwarded += 1;
        if (res.status === 200) {
          expect(upstream[0]?.path, target).to.equal(CHAT);
          const usage = await usageLine(id ?? '');
          expect(usage['totalTokens'], target).to.be.above(0);
        } else {
          // /V1/CHAT/COMPLETIONS: judged as chat, but this upstream routes case-sensitively.
          expect(res.status, target).to.equal(404);
          expect(upstream[0]?.path, target).to.equal(CHAT.toUpperCase());
        }
      }
      expect(forwarded).to.be.at.least(8);
    });

    it('a path that only Tollgate can see as non-canonical is refused by Tollgate itself', async () => {
      for (const target of [`${CHAT}/`, `${CHAT};x=1`, `${CHAT}%20`]) {
        const res = await send('alice', 'POST', target, chatBody('gpt-4o-mini'));
        expect(res.status, target).to.equal(400);
        expect(JSON.parse(res.body)).to.deep.equal({
          error: {
            message: JSON.parse(res.body).error.message,
            type: 'invalid_request_error',
            param: null,
            code: 'invalid_path',
          },
        });
        const line = logs().find((l) => l['requestId'] === res.headers['x-request-id']);
        expect(line, target).to.deep.include({
          audit: 'decision',
          reason: 'invalid_path',
          status: 400,
        });
      }
    });
  });

  describe('bodies', () => {
    it('judges a metered body whatever its content-type claims', async () => {
      for (const type of [
        'text/plain',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
      ]) {
        const res = await send('alice', 'POST', CHAT, chatBody('gpt-4o'), { 'content-type': type });
        expect(res.status, type).to.equal(403);
        expect(res.headers['x-tollgate-reason']).to.equal('model_not_allowed');
      }
    });

    it('refuses invalid UTF-8, duplicate members, compressed bodies and non-plain model names', async () => {
      const before = ctx.upstream.received.length;
      const badUtf8 = Buffer.concat([
        Buffer.from('{"model":"gpt-4o-mini","messages":[{"role":"user","content":"'),
        Buffer.from([0xc3, 0x28, 0xff]),
        Buffer.from('"}]}'),
      ]);
      const cases: [string, string | Buffer, Record<string, string>, string][] = [
        ['invalid UTF-8', badUtf8, {}, 'invalid_body'],
        [
          'duplicate model',
          '{"model":"gpt-4o-mini","messages":[],"model":"gpt-4o"}',
          {},
          'invalid_body',
        ],
        [
          'escaped duplicate',
          '{"model":"gpt-4o-mini","messages":[],"mod\\u0065l":"gpt-4o"}',
          {},
          'invalid_body',
        ],
        ['gzip', gzipSync(chatBody('gpt-4o')), { 'content-encoding': 'gzip' }, 'invalid_body'],
        ['trailing space', chatBody('gpt-4o '), {}, 'invalid_model'],
        ['no model', '{"messages":[]}', {}, 'invalid_model'],
        ['n as a string', '{"model":"gpt-4o-mini","messages":[],"n":"5"}', {}, 'invalid_body'],
        // The reservation counts at most 128 generations; an upstream that honours more would
        // overshoot it (OpenAI refuses them, compatible servers may not).
        ['n above 128', '{"model":"gpt-4o-mini","messages":[],"n":129,"max_completion_tokens":10}', {}, 'invalid_body'],
        ['best_of above 128', '{"model":"gpt-4o-mini","messages":[],"best_of":200}', {}, 'invalid_body'],
      ];
      for (const [name, body, headers, reason] of cases) {
        const res = await send('alice', 'POST', CHAT, body, headers);
        expect(res.status, name).to.equal(400);
        expect(res.headers['x-tollgate-reason'], name).to.equal(reason);
      }
      expect(ctx.upstream.received.length).to.equal(before);
    });

    it('matches model rules regardless of letter case', async () => {
      for (const model of ['GPT-4o', 'Gpt-4O']) {
        const res = await send('alice', 'POST', CHAT, chatBody(model));
        expect(res.status, model).to.equal(403);
      }
    });
  });

  describe('indirect model work', () => {
    it('is refused under default: allow once rules judge models or budgets apply', async () => {
      const before = ctx.upstream.received.length;
      const cases: [string, string, string, Record<string, string>][] = [
        [
          'POST',
          '/v1/batches',
          '{"input_file_id":"file-1","endpoint":"/v1/chat/completions","completion_window":"24h"}',
          {},
        ],
        ['POST', '/v1/fine_tuning/jobs', '{"model":"gpt-4o-mini","training_file":"file-1"}', {}],
        [
          'POST',
          '/v1/realtime/client_secrets',
          '{"session":{"type":"realtime","model":"gpt-realtime"}}',
          {},
        ],
        ['GET', '/v1/realtime?model=gpt-realtime', '', {}],
        [
          'POST',
          '/v1/audio/transcriptions',
          '--x\r\nContent-Disposition: form-data; name="model"\r\n\r\ngpt-4o\r\n--x--\r\n',
          { 'content-type': 'multipart/form-data; boundary=x' },
        ],
        ['POST', '/v1/images/generations', '{"model":"gpt-image-1","prompt":"a cat"}', {}],
        ['POST', '/v1/threads/runs', '{"assistant_id":"asst_1"}', {}],
        ['POST', '/v1/something-new', '{"model":"gpt-4o-mini"}', {}],
      ];
      for (const [method, target, body, headers] of cases) {
        const res = await send('alice', method, target, body, headers);
        expect(res.status, target).to.equal(403);
        expect(res.headers['x-tollgate-reason'], target).to.equal('access_denied');
        const line = logs().find((l) => l['requestId'] === res.headers['x-request-id']);
        expect(line?.['rule'], target).to.equal('indirect-endpoint');
      }
      expect(ctx.upstream.received.length).to.equal(before);
    });

    it('is allowed by a rule that names it, and plain endpoints stay open', async () => {
      const batch = await send(
        'ml',
        'POST',
        '/v1/batches',
        '{"input_file_id":"file-1","endpoint":"/v1/chat/completions","completion_window":"24h"}',
      );
      expect(receivedFor(batch.headers['x-tollgate-request-id'])).to.have.length(1);
      const files = await send('alice', 'GET', '/v1/files', '');
      expect(receivedFor(files.headers['x-tollgate-request-id'])).to.have.length(1);
    });
  });

  describe('credentials', () => {
    it("the caller's token reaches the upstream in no header, cookie, query or body, on any endpoint", async () => {
      const token = tokens['ml'] ?? '';
      const carriers = {
        'x-api-key': token,
        'api-key': token,
        'x-goog-api-key': token,
        'proxy-authorization': `Bearer ${token}`,
        cookie: `session=${token}; theme=dark`,
        'x-debug-token': `copy of ${token}`,
        'user-agent': `tool/1.0 ${token.slice(0, 20)}${token.slice(20)}`,
      };
      const query = `?key=${token}&api-key=${token}&access_token=${token}&limit=2&x=${token}`;
      const requests: [string, string, string][] = [
        ['POST', CHAT, chatBody('gpt-4o-mini')],
        ['POST', EMBEDDINGS, JSON.stringify({ model: 'text-embedding-3-small', input: 'x' })],
        ['POST', '/v1/responses', JSON.stringify({ model: 'gpt-4o-mini', input: 'hi' })],
        ['GET', '/v1/models', ''],
        ['GET', '/v1/files', ''],
        [
          'POST',
          '/v1/batches',
          '{"input_file_id":"file-1","endpoint":"/v1/chat/completions","completion_window":"24h"}',
        ],
      ];
      for (const [method, path, body] of requests) {
        const res = await send('ml', method, `${path}${query}`, body, carriers);
        const got = receivedFor(res.headers['x-tollgate-request-id']);
        expect(got, path).to.have.length(1);
        const seen = [
          got[0]?.url ?? '',
          ...Object.values(got[0]?.headers ?? {}),
          got[0]?.rawBody.toString('latin1') ?? '',
        ].join('\n');
        expect(
          seen.includes(token),
          `${method} ${path} leaked the token: ${seen.slice(0, 300)}`,
        ).to.equal(false);
        expect(got[0]?.headers['authorization'], path).to.equal('Bearer sk-test');
        expect(got[0]?.headers['cookie'], path).to.equal(undefined);
        expect(got[0]?.url, path).to.equal(`${path}?limit=2`);
      }
    });

    it('refuses a token in the path or the body rather than forward it', async () => {
      const token = tokens['alice'] ?? '';
      const before = ctx.upstream.received.length;
      const inBody = await send(
        'alice',
        'POST',
        CHAT,
        JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: token }] }),
      );
      expect([inBody.status, inBody.headers['x-tollgate-reason']]).to.deep.equal([
        400,
        'invalid_body',
      ]);
      const inPath = await send('alice', 'GET', `/v1/files/${token}`);
      expect([inPath.status, inPath.headers['x-tollgate-reason']]).to.deep.equal([
        400,
        'invalid_path',
      ]);
      expect(ctx.upstream.received.length).to.equal(before);
    });
  });

  describe('request ids and claim encoding', () => {
    it("every response carries an id: Envoy's on denials (the SDK reports it), the provider's and Tollgate's on upstream answers", async () => {
      const client = new OpenAI({
        baseURL: `${ctx.stack.ready.envoy}/v1`,
        apiKey: tokens['alice'] ?? '',
        maxRetries: 0,
      });
      const denied = await client.chat.completions
        .create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] })
        .then(
          () => undefined,
          (err: unknown) => err,
        );
      expect(denied).to.be.instanceOf(OpenAI.PermissionDeniedError);
      const requestId = (denied as InstanceType<typeof OpenAI.PermissionDeniedError>).requestID;
      expect(requestId)
        .to.be.a('string')
        .and.match(/^[0-9a-f-]{36}$/);
      expect(
        logs().find((l) => l['audit'] === 'decision' && l['requestId'] === requestId),
      ).to.deep.include({ reason: 'model_not_allowed' });

      const { request_id: providerId, response } = await client.chat.completions
        .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })
        .withResponse();
      expect(providerId).to.match(/^dev-/); // the provider's own
      const ours = response.headers.get('x-tollgate-request-id') ?? '';
      expect(logs().find((l) => l['audit'] === 'decision' && l['requestId'] === ours)).to.not.equal(
        undefined,
      );
      expect(receivedFor(ours)).to.have.length(1);
      // The usage line names the provider's id too, so its logs can be joined to ours.
      expect((await usageLine(ours))['providerRequestId']).to.equal(providerId);

      // Envoy's own replies: an unnormalisable path, a body over the buffer, no token at all.
      const unauthenticated = await rawRequest(
        ctx.stack.ready.envoy,
        'POST',
        CHAT,
        {},
        chatBody('gpt-4o-mini'),
      );
      const badPath = await send(
        'alice',
        'POST',
        '/v1/chat%2fcompletions',
        chatBody('gpt-4o-mini'),
      );
      const tooLarge = await send(
        'alice',
        'POST',
        CHAT,
        JSON.stringify({ model: 'gpt-4o-mini', pad: 'x'.repeat(1_100_000) }),
      );
      for (const [name, res, status] of [
        ['no token', unauthenticated, 401],
        ['bad path', badPath, 400],
        ['too large', tooLarge, 413],
      ] as const) {
        expect(res.status, name).to.equal(status);
        expect(res.headers['x-request-id'], name).to.match(/^[0-9a-f-]{36}$/);
        expect(res.headers['content-type'], name).to.equal('application/json');
      }
      expect(badPath.headers['x-tollgate-reason']).to.equal('invalid_path');
    });

    it('a client cannot choose the request id', async () => {
      const res = await send('alice', 'POST', CHAT, chatBody('gpt-4o'), {
        'x-request-id': 'forged-id',
      });
      expect(res.headers['x-request-id']).to.not.equal('forged-id');
      expect(logs().some((l) => l['requestId'] === 'forged-id')).to.equal(false);
    });

    it('list claims reach the upstream unambiguously: a comma inside a group is not a separator', async () => {
      const token = await ctx.issuer.mint({
        sub: 'jo',
        groups: ['ml,research', 'José', 'metered'],
      });
      const res = await rawRequest(
        ctx.stack.ready.envoy,
        'POST',
        CHAT,
        { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        chatBody('gpt-4o-mini'),
      );
      const got = receivedFor(res.headers['x-tollgate-request-id']);
      expect(got[0]?.headers['x-user-groups']).to.equal('ml%2Cresearch,Jos%C3%A9,metered');
      expect(got[0]?.headers['x-user-groups']?.split(',').map(decodeURIComponent)).to.deep.equal([
        'ml,research',
        'José',
        'metered',
      ]);
    });
  });
});
