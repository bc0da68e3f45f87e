import { expect } from 'chai';
import type { Client } from '@grpc/grpc-js';
import { deny } from '../../../src/domain/denials.js';
import type { Allowance, Decision } from '../../../src/domain/decision.js';
import type { InboundRequest } from '../../../src/domain/request.js';
import { startGrpcServer } from '../../../src/server/grpc.js';
import type { GrpcServerHandle } from '../../../src/server/grpc.js';
import { authzClient, unary } from './clients.js';

interface WireHeaderOption {
  header: { key: string; value: string };
  append: { value: boolean } | null;
}
interface WireCheckResponse {
  status: { code: number; message: string };
  http_response?: string;
  denied_response?: { status: { code: number }; headers: WireHeaderOption[]; body: string };
  ok_response?: {
    headers: WireHeaderOption[];
    headers_to_remove: string[];
    response_headers_to_add: WireHeaderOption[];
  };
  dynamic_metadata: { fields: Record<string, Record<string, unknown>> } | null;
}

/** A CheckRequest shaped like the ones Envoy 1.40 sends (see the e2e test for the real thing). */
function checkRequest(http: Record<string, unknown>): unknown {
  return {
    attributes: {
      source: { address: { socket_address: { address: '10.1.2.3', port_value: 51234 } } },
      request: { http: { id: '14465321925120351518', method: 'POST', ...http } },
    },
  };
}

function headerMap(options: WireHeaderOption[]): Record<string, string> {
  return Object.fromEntries(options.map((o) => [o.header.key, o.header.value]));
}

const allowance: Allowance = {
  identity: {
    provider: 'test',
    issuer: 'https://issuer.test',
    subject: 'alice',
    user: 'alice@example.com',
    groups: ['ml'],
    claims: {},
    expiresAt: 0,
  },
  setHeaders: { 'x-user-id': 'alice', authorization: 'Bearer sk-upstream' },
  removeHeaders: ['x-debug'],
  responseHeaders: { 'x-ratelimit-limit-requests': '100', 'x-ratelimit-remaining-requests': '99' },
  metadata: {
    tenant: 'marketing',
    reserved: 1200,
    groups: ['ml', 'ops'],
    nested: { estimated: true },
    none: null,
  },
};

describe('ext_authz over gRPC', () => {
  let server: GrpcServerHandle;
  let client: Client;
  let seen: InboundRequest[] = [];
  let next: (req: InboundRequest) => Promise<Decision> = () =>
    Promise.resolve({ allow: allowance });

  before(async () => {
    server = await startGrpcServer({
      address: '127.0.0.1:0',
      authorize: (req) => {
        seen.push(req);
        return next(req);
      },
      newExchange: () => ({}),
    });
    client = authzClient(server.address);
  });
  after(async () => {
    client.close();
    await server.shutdown(0);
  });
  beforeEach(() => {
    seen = [];
    next = () => Promise.resolve({ allow: allowance });
  });

  const check = (http: Record<string, unknown>) =>
    unary<WireCheckResponse>(client, 'Check', checkRequest(http));

  it('turns the CheckRequest into a plain InboundRequest', async () => {
    await check({
      path: '/v1/chat/completions?api-version=1',
      headers: {
        ':path': '/v1/chat/completions?api-version=1',
        Authorization: 'Bearer t',
        'x-request-id': 'req-1',
      },
      body: '{"model":"gpt-4o"}',
    });
    expect(seen).to.have.length(1);
    expect(seen[0]).to.deep.equal({
      id: 'req-1',
      method: 'POST',
      path: '/v1/chat/completions',
      query: 'api-version=1',
      headers: {
        ':path': '/v1/chat/completions?api-version=1',
        authorization: 'Bearer t',
        'x-request-id': 'req-1',
      },
      body: '{"model":"gpt-4o"}',
      sourceIp: '10.1.2.3',
    });
  });

  it('keeps raw_body as bytes when Envoy packs the body so, and falls back for the id', async () => {
    // Bytes, undecoded: the pipeline refuses invalid UTF-8 instead of judging U+FFFD.
    const bytes = Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d]);
    await check({ path: '/v1/embeddings', headers: {}, raw_body: bytes });
    expect(Buffer.isBuffer(seen[0]?.body)).to.equal(true);
    expect(seen[0]?.body).to.deep.equal(bytes);
    expect(seen[0]?.id).to.equal('14465321925120351518');
    await unary(client, 'Check', {
      attributes: { request: { http: { method: 'GET', path: '/' } } },
    });
    expect(seen[1]?.id).to.match(/^[0-9a-f-]{36}$/);
    expect(seen[1]).to.not.have.property('body');
    expect(seen[1]).to.not.have.property('sourceIp');
  });

  it('allows with header mutations that overwrite (append: {value: false} on the wire)', async () => {
    const res = await check({ path: '/v1/models', headers: {} });
    expect(res.status.code).to.equal(0);
    expect(res.http_response).to.equal('ok_response');
    const ok = res.ok_response;
    if (ok === undefined) throw new Error('no ok_response');
    expect(headerMap(ok.headers)).to.deep.equal(allowance.setHeaders);
    expect(headerMap(ok.response_headers_to_add)).to.deep.equal(allowance.responseHeaders);
    for (const option of [...ok.headers, ...ok.response_headers_to_add]) {
      expect(option.append, option.header.key).to.deep.equal({ value: false });
    }
    expect(ok.headers_to_remove).to.deep.equal(['x-debug']);
    expect(res.dynamic_metadata?.fields['tenant']).to.include({ stringValue: 'marketing' });
    expect(res.dynamic_metadata?.fields['reserved']).to.include({ numberValue: 1200 });
    expect(res.dynamic_metadata?.fields['none']).to.include({ kind: 'nullValue' });
  });

  const denials = [
    { status: 401, grpc: 16, decision: deny('token_expired', 'token expired') },
    {
      status: 403,
      grpc: 7,
      decision: deny('model_not_allowed', 'model gpt-4o is not allowed', { rule: 'r1' }),
    },
    {
      status: 429,
      grpc: 8,
      decision: deny('budget_exhausted', 'budget exhausted', {
        headers: { 'retry-after': '3600', 'x-should-retry': 'false' },
      }),
    },
  ] as const;

  for (const { status, grpc, decision } of denials) {
    it(`denies ${status} with the OpenAI envelope, content-type and x-tollgate-reason`, async () => {
      next = () => Promise.resolve({ deny: decision });
      const res = await check({ path: '/v1/chat/completions', headers: {} });
      expect(res.status.code).to.equal(grpc);
      expect(res.http_response).to.equal('denied_response');
      const denied = res.denied_response;
      if (denied === undefined) throw new Error('no denied_response');
      expect(denied.status.code).to.equal(status);
      expect(JSON.parse(denied.body)).to.deep.equal({
        error: { message: decision.message, type: decision.type, param: null, code: decision.code },
      });
      const headers = headerMap(denied.headers);
      expect(headers).to.include({
        'content-type': 'application/json',
        'x-tollgate-reason': decision.reason,
      });
      expect(headers).to.include(decision.headers);
      for (const option of denied.headers) expect(option.append).to.deep.equal({ value: false });
      expect(res.ok_response ?? null).to.equal(null);
    });
  }

  it('answers a 500 internal_error deny (not a gRPC error) when authorize throws', async () => {
    next = () => Promise.reject(new Error('boom'));
    const res = await check({ path: '/v1/chat/completions', headers: {} });
    expect(res.status.code).to.equal(13);
    expect(res.denied_response?.status.code).to.equal(500);
    expect(headerMap(res.denied_response?.headers ?? [])).to.include({
      'x-tollgate-reason': 'internal_error',
    });
    expect(JSON.parse(res.denied_response?.body ?? '{}')).to.have.nested.property(
      'error.type',
      'server_error',
    );
  });
});
