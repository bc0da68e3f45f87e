/**
 * Replays what the pinned real Envoy sent and accepted (test/fixtures/envoy, captured by
 * `npm run fixtures:capture`) through our adapters: the CheckRequest into toGatewayRequest, our
 * answers back through toCheckResponse / encodeCheckResponse, and each Process stream through
 * serveProcessStream. Pure: the bytes are decoded here, no socket is opened. Volatile values
 * (ids, tokens, ports, timestamps) are read from the fixtures themselves.
 */
import { decodeHandoff } from '../../../src/handoff/handoff.js';
import { readdirSync } from 'node:fs';
import { expect } from 'chai';
import { toCheckResponse, toGatewayRequest } from '../../../src/edge/authz-adapter.js';
import { encodeCheckResponse } from '../../../src/edge/check-encode.js';
import {
  AUTHZ_NAMESPACE,
  headerRecord,
  serveProcessStream,
} from '../../../src/edge/extproc-adapter.js';
import {
  fromStruct,
  type AttributeHttpRequest,
  type ProcessingRequest,
} from '../../../src/edge/protos.js';
import type { ResponsePhases } from '../../../src/response/phases.js';
import { pinnedEnvoyVersion } from '../../../src/stack/envoy.js';
import { CASES } from '../../../scripts/envoy-fixtures/cases.js';
import {
  FIXTURE_DIR,
  FakeProcessCall,
  actionOf,
  checkOf,
  decisionOf,
  loadCaptured,
  processMethod,
  streamOf,
  type Captured,
} from './captured.js';

const all: Captured[] = CASES.map((c) => loadCaptured(c.name));
const byName = (name: string): Captured => {
  const found = all.find((c) => c.name === name);
  if (found === undefined) throw new Error(`no fixture ${name}`);
  return found;
};
const httpOf = (c: Captured): AttributeHttpRequest =>
  checkOf(c).request.attributes?.request?.http ?? {};
const allowed = all.filter((c) => c.check?.response.ok_response !== undefined);
const denied = all.filter((c) => c.check?.response.denied_response !== undefined);
const streams = all.filter((c) => c.stream !== undefined);
/** The x-request-id Envoy made for the request (volatile: read from the fixture). */
const requestIdOf = (c: Captured): string => httpOf(c).headers?.['x-request-id'] ?? '';
const admissionOf = (c: Captured): unknown =>
  fromStruct(checkOf(c).response.dynamic_metadata)['admission'];
const kindOf = (m: ProcessingRequest): string => m.request ?? '';

describe('edge: messages captured from real Envoy (test/fixtures/envoy)', () => {
  it('holds one fixture per capture case, from the pinned Envoy, with the calls each case makes', () => {
    const files = readdirSync(FIXTURE_DIR).filter((f) => f.endsWith('.json'));
    expect(files.sort()).to.deep.equal(CASES.map((c) => `${c.name}.json`).sort());
    for (const [i, c] of CASES.entries()) {
      const captured = all[i]!;
      expect(captured.envoy, c.name).to.equal(pinnedEnvoyVersion());
      expect(captured.check !== undefined, `${c.name} check`).to.equal(c.expect.check);
      expect(captured.stream !== undefined, `${c.name} process`).to.equal(c.expect.process);
    }
    expect(allowed).to.have.length(5);
    expect(denied).to.have.length(3);
  });

  describe('CheckRequest → toGatewayRequest', () => {
    it('reads the method, the path, x-request-id as the id and the body as raw bytes', () => {
      const c = byName('chat-completion');
      const http = httpOf(c);
      // pack_as_bytes: the body comes in raw_body only.
      expect(http.body).to.equal(undefined);
      expect(Buffer.isBuffer(http.raw_body)).to.equal(true);
      // Envoy 1.40's `id` is its internal stream id; x-request-id is the request's name.
      expect(http.id).to.match(/^\d+$/);
      const req = toGatewayRequest(checkOf(c).request);
      expect(req).to.include({
        method: 'POST',
        path: '/v1/chat/completions',
        sourceIp: '127.0.0.1',
      });
      expect(req).not.to.have.property('query');
      expect(req.id)
        .to.equal(requestIdOf(c))
        .and.match(/^[0-9a-f-]{36}$/);
      expect(Buffer.isBuffer(req.body)).to.equal(true);
      expect((req.body as Buffer).equals(http.raw_body!)).to.equal(true);
      expect(JSON.parse((req.body as Buffer).toString('utf8'))).to.include({
        model: 'gpt-4o-mini',
      });
      expect(req.headers['x-envoy-auth-partial-body']).to.equal('false');
      expect(req.headers['authorization']).to.match(/^Bearer ey/);
      // The client sent x-user-id: mallory; Envoy's early header mutation dropped it.
      expect(req.headers).not.to.have.property('x-user-id');
    });

    it('hands invalid UTF-8 over byte for byte, and our 400 invalid_body is what Envoy got', () => {
      const c = byName('invalid-utf8-body');
      const req = toGatewayRequest(checkOf(c).request);
      expect(Buffer.isBuffer(req.body)).to.equal(true);
      const body = req.body as Buffer;
      expect(body.indexOf(Buffer.from([0xff, 0xc3, 0x28]))).to.be.greaterThan(0);
      expect(body.toString('utf8')).to.contain('\ufffd'); // as text it would be silently repaired
      const response = checkOf(c).response;
      expect(response.status.code).to.equal(3);
      expect(response.denied_response?.status.code).to.equal(400);
      expect(JSON.parse(response.denied_response?.body ?? '{}')).to.have.nested.property(
        'error.code',
        'invalid_body',
      );
    });

    it('splits the query from the path (Envoy sends both in `path` and `:path`)', () => {
      const c = byName('query-credential');
      const query = 'api-version=2024-10-21&api_key=sk-client-leaked';
      expect(httpOf(c).path).to.equal(`/v1/chat/completions?${query}`);
      const req = toGatewayRequest(checkOf(c).request);
      expect(req).to.include({ path: '/v1/chat/completions', query });
      expect(req.headers[':path']).to.equal(`/v1/chat/completions?${query}`);
    });

    it('gives a header-only request no body: Envoy buffers nothing for a GET', () => {
      const c = byName('models-list');
      const http = httpOf(c);
      expect(http.raw_body).to.equal(undefined);
      expect(http.headers).not.to.have.property('x-envoy-auth-partial-body');
      const req = toGatewayRequest(checkOf(c).request);
      expect(req).to.include({ method: 'GET', path: '/v1/models' });
      expect(req).not.to.have.property('body');
    });

    it('sees lower-case header names and pseudo-headers in every Check, and names each by x-request-id', () => {
      for (const c of all) {
        const req = toGatewayRequest(checkOf(c).request);
        for (const name of Object.keys(req.headers))
          expect(name, c.name).to.equal(name.toLowerCase());
        expect(req.headers, c.name).to.include.keys(
          ':authority',
          ':method',
          ':path',
          ':scheme',
          'x-request-id',
        );
        expect(req.id, c.name).to.equal(requestIdOf(c)).and.not.equal(httpOf(c).id);
      }
    });
  });

  describe('CheckResponse: what Envoy accepted', () => {
    it('allows with identity headers that overwrite (append false), credentials removed, the admission id', () => {
      for (const c of allowed) {
        const { response } = checkOf(c);
        expect(response.status.code, c.name).to.equal(0);
        const ok = response.ok_response!;
        for (const option of [...(ok.headers ?? []), ...(ok.response_headers_to_add ?? [])]) {
          expect(option.append, `${c.name} ${option.header.key}`).to.deep.equal({ value: false });
          expect(option).not.to.have.property('append_action');
          expect(option.header.value).to.be.a('string');
          expect(option.header).not.to.have.property('raw_value');
        }
        const set = Object.fromEntries(
          (ok.headers ?? []).map((o) => [o.header.key, o.header.value]),
        );
        expect(set, c.name).to.include({
          'x-user-id': 'u-fixture',
          'x-tenant-id': 'acme',
          'x-user-groups': 'eng,ml-team',
        });
        expect(set['authorization']).to.match(/^Bearer sk-/);
        expect(ok.headers_to_remove, c.name).to.include.members([
          'api-key',
          'x-api-key',
          'cookie',
          'proxy-authorization',
        ]);
        const metadata = fromStruct(response.dynamic_metadata);
        expect(metadata['admission'], c.name).to.be.a('string').and.not.equal('');
        expect(metadata['requestId'], c.name).to.equal(requestIdOf(c));
      }
      expect(
        checkOf(byName('query-credential')).response.ok_response?.query_parameters_to_remove,
      ).to.deep.equal(['api_key']);
      expect(checkOf(byName('chat-completion')).response.ok_response).not.to.have.property(
        'query_parameters_to_remove',
      );
    });

    it('denies with a normal response: a non-zero code and the OpenAI envelope as JSON', () => {
      const expected: Record<string, [number, number, string]> = {
        'chat-completion-denied-model': [7, 403, 'model_not_allowed'],
        'missing-token': [16, 401, 'missing_token'],
        'invalid-utf8-body': [3, 400, 'invalid_body'],
      };
      for (const c of denied) {
        const { response } = checkOf(c);
        const [grpc, http, reason] = expected[c.name]!;
        expect(response.status, c.name).to.deep.equal({ code: grpc, message: reason });
        expect(response.denied_response?.status.code).to.equal(http);
        const headers = Object.fromEntries(
          (response.denied_response?.headers ?? []).map((o) => [o.header.key, o]),
        );
        expect(headers['content-type']).to.deep.include({
          header: { key: 'content-type', value: 'application/json' },
          append: { value: false },
        });
        expect(headers['x-tollgate-reason']?.header.value).to.equal(reason);
        expect(headers['x-request-id']?.header.value).to.equal(requestIdOf(c));
        expect(response).not.to.have.property('dynamic_metadata'); // so ext_proc is skipped
      }
      expect(
        checkOf(byName('missing-token')).response.denied_response?.headers?.map(
          (o) => o.header.key,
        ),
      ).to.include('www-authenticate');
    });

    it('is byte for byte what encodeCheckResponse and toCheckResponse write for the decoded decision', () => {
      for (const c of all) {
        const { response, responseBytes } = checkOf(c);
        expect(encodeCheckResponse(response).equals(responseBytes), `${c.name}: encoder`).to.equal(
          true,
        );
        const again = encodeCheckResponse(toCheckResponse(decisionOf(response)));
        expect(again.toString('hex'), `${c.name}: adapter`).to.equal(responseBytes.toString('hex'));
      }
    });
  });

  describe('ProcessingRequest: what ext_proc receives', () => {
    it('the first message carries the ext_authz metadata with the admission id, and headers in raw_value', () => {
      for (const c of streams) {
        const first = streamOf(c).requests[0]!;
        // A stream's `edit` filter skips the request headers: its first message is the body.
        expect(kindOf(first), c.name).to.equal(c.name === 'chat-completion-stream' ? 'request_body' : 'request_headers');
        const namespace = first.metadata_context?.filter_metadata?.[AUTHZ_NAMESPACE];
        expect(namespace, c.name).not.to.equal(undefined);
        const metadata = fromStruct(namespace);
        // Everything our Check published, plus Envoy's own ext_authz_duration (ms).
        expect(metadata, c.name).to.deep.include(fromStruct(checkOf(c).response.dynamic_metadata));
        expect(metadata['ext_authz_duration']).to.be.a('number');
        // The hand-off arrives whole: what the response side needs, with nothing held between.
        const handoff = decodeHandoff(metadata);
        expect(handoff, c.name).to.include({ id: admissionOf(c), requestId: requestIdOf(c) });
        if (kindOf(first) !== 'request_headers') continue;
        expect(handoff?.path, c.name).to.equal(headerRecord(first.request_headers?.headers)[':path']?.split('?')[0]);
        const lines = first.request_headers?.headers?.headers ?? [];
        for (const h of lines) {
          expect(Buffer.isBuffer(h.raw_value), `${c.name} ${h.key}`).to.equal(true);
          expect(h).not.to.have.property('value');
        }
        const headers = headerRecord(first.request_headers?.headers);
        expect(headers['x-request-id'], c.name).to.equal(requestIdOf(c));
        // What the ext_authz answer set, as the upstream will get it.
        const set = Object.fromEntries(
          (checkOf(c).response.ok_response?.headers ?? []).map((o) => [
            o.header.key,
            o.header.value,
          ]),
        );
        expect(headers, c.name).to.include(set);
      }
    });

    it('every message Envoy sends carries the namespace with the same admission id', () => {
      for (const c of streams) {
        for (const m of streamOf(c).requests) {
          const metadata = fromStruct(m.metadata_context?.filter_metadata?.[AUTHZ_NAMESPACE]);
          expect(metadata['admission'], `${c.name} ${kindOf(m)}`).to.equal(admissionOf(c));
        }
      }
    });

    it('sees the path after ext_authz removed the credential from the query', () => {
      const first = streamOf(byName('query-credential')).requests[0]!;
      expect(headerRecord(first.request_headers?.headers)[':path']).to.equal(
        '/v1/chat/completions?api-version=2024-10-21',
      );
    });

    it('gets a streamed SSE response in several response_body chunks, then end_of_stream', () => {
      const c = byName('chat-completion-stream');
      const { requests, responses } = streamOf(c);
      const kinds = requests.map(kindOf);
      // The `edit` filter: no request headers, and the first chunk may come before the answer
      // to the response headers (send_body_without_waiting_for_header_response).
      expect(kinds.slice(0, 2)).to.deep.equal(['request_body', 'response_headers']);
      expect(kinds.slice(2).every((k) => k === 'response_body')).to.equal(true);
      expect(requests[0]?.protocol_config?.send_body_without_waiting_for_header_response).to.equal(true);
      // The filter asks for the body itself (to add include_usage): no mode override is sent.
      expect(responses.every((r) => r.mode_override === undefined)).to.equal(true);
      expect(requests[0]?.request_body?.end_of_stream).to.equal(true);
      expect(requests[0]?.request_body?.body?.equals(httpOf(c).raw_body!)).to.equal(true);
      expect(headerRecord(requests[1]?.response_headers?.headers)['content-type']).to.equal(
        'text/event-stream',
      );
      const chunks = requests.slice(2).map((m) => m.response_body ?? {});
      expect(chunks.filter((b) => (b.body?.length ?? 0) > 0).length).to.be.at.least(2);
      expect(chunks.at(-1)?.end_of_stream).to.equal(true);
      expect(chunks.slice(0, -1).every((b) => b.end_of_stream !== true)).to.equal(true);
      const sse = Buffer.concat(chunks.map((b) => b.body ?? Buffer.alloc(0))).toString('utf8');
      expect(sse.startsWith('data: {')).to.equal(true);
      expect(sse).to.contain('"usage":{"prompt_tokens"').and.contain('data: [DONE]');
    });
  });

  describe('serveProcessStream replays each captured stream', () => {
    for (const name of CASES.filter((c) => c.expect.process).map((c) => c.name)) {
      it(`${name}: answers every message with the bytes Envoy accepted, and ends complete`, async () => {
        const c = byName(name);
        const { requests, responses, responseBytes, order } = streamOf(c);
        expect(order.filter((d) => d === 'in')).to.have.length(responses.length);
        const answers = responses.map(actionOf);
        const seen: Array<{ phase: string; chunk?: Buffer; metadata?: Record<string, unknown> }> =
          [];
        let outcome: string | undefined;
        // Each phase records what it was given and returns what Tollgate answered then.
        const answer = (entry: (typeof seen)[number]) => {
          seen.push(entry);
          return answers[seen.length - 1];
        };
        const phases: ResponsePhases = {
          requestHeaders: (_h, metadata) => answer({ phase: 'request_headers', metadata }),
          requestBody: (chunk, _eos, metadata) => answer({ phase: 'request_body', chunk, ...(metadata !== undefined ? { metadata } : {}) }),
          responseHeaders: () => answer({ phase: 'response_headers' }),
          responseBody: (chunk) => answer({ phase: 'response_body', chunk }),
          end: (o) => void (outcome = o),
        };
        const call = new FakeProcessCall();
        serveProcessStream(call.asStream(), phases);
        for (const m of requests) call.emit('data', m);
        await call.settle();

        expect(seen.map((s) => s.phase)).to.deep.equal(requests.map(kindOf));
        expect(seen[0]?.metadata?.['admission']).to.equal(admissionOf(c));
        for (const [i, s] of seen.entries()) {
          if (s.chunk === undefined) continue;
          const m = requests[i]!;
          const sent = (m.request_body ?? m.response_body)?.body ?? Buffer.alloc(0);
          expect(s.chunk.equals(sent), `${name} chunk ${i}`).to.equal(true);
        }
        expect(call.written).to.have.length(responseBytes.length);
        for (const [i, answer] of call.written.entries()) {
          const bytes = processMethod.responseSerialize(answer);
          expect(bytes.toString('hex'), `${name} answer ${i}`).to.equal(
            responseBytes[i]!.toString('hex'),
          );
        }
        expect(call.ended, 'closed with OK after the last answer').to.equal(true);
        expect(outcome).to.equal('complete');
      });
    }
  });
});
