import { deny } from '../../../src/domain/denials.js';
import { expect } from 'chai';
import { status as GrpcStatus } from '@grpc/grpc-js';
import type { Client, ClientDuplexStream, ServiceError } from '@grpc/grpc-js';
import type { ResponsePhases } from '../../../src/response/phases.js';
import { startGrpcServer } from '../../../src/server/grpc.js';
import type { GrpcServerHandle } from '../../../src/server/grpc.js';
import { extProcClient } from './clients.js';

interface WireHeaderOption {
  header: { key: string; value: string; raw_value: Buffer };
  append: { value: boolean } | null;
}
interface WireCommon {
  status: number;
  header_mutation: { set_headers: WireHeaderOption[]; remove_headers: string[] } | null;
  body_mutation: { body?: Buffer; mutation?: string } | null;
}
interface WireImmediate {
  status: { code: number };
  headers: { set_headers: WireHeaderOption[]; remove_headers: string[] } | null;
  body: Buffer;
  details: string;
}
interface WireResponse {
  response?: string;
  immediate_response?: WireImmediate;
  request_headers?: { response: WireCommon };
  response_headers?: { response: WireCommon };
  request_body?: { response: WireCommon };
  response_body?: { response: WireCommon };
  mode_override: Record<string, number> | null;
}

type Duplex = ClientDuplexStream<unknown, WireResponse>;

function headers(map: Record<string, string>, endOfStream = false): unknown {
  return {
    headers: {
      headers: Object.entries(map).map(([key, v]) => ({ key, raw_value: Buffer.from(v) })),
    },
    end_of_stream: endOfStream,
  };
}

const authzMetadata = {
  filter_metadata: {
    'envoy.filters.http.ext_authz': {
      fields: { tenant: { stringValue: 'marketing' }, reserved: { numberValue: 1200 } },
    },
  },
};

/** One Process stream with a helper that sends a message and awaits the single answer. */
function open(client: Client): {
  call: Duplex;
  ask(msg: unknown): Promise<WireResponse>;
  status: Promise<ServiceError | null>;
} {
  const fn = (client as unknown as Record<string, () => Duplex>)['Process'];
  if (fn === undefined) throw new Error('no Process');
  const call = fn.call(client);
  const answers: WireResponse[] = [];
  const waiting: Array<(r: WireResponse) => void> = [];
  call.on('data', (r: WireResponse) => {
    const w = waiting.shift();
    if (w) w(r);
    else answers.push(r);
  });
  const status = new Promise<ServiceError | null>((resolve) => {
    call.on('error', (err: ServiceError) => resolve(err));
    call.on('end', () => resolve(null));
  });
  return {
    call,
    status,
    ask(msg) {
      call.write(msg);
      const queued = answers.shift();
      return queued ? Promise.resolve(queued) : new Promise((resolve) => waiting.push(resolve));
    },
  };
}

describe('ext_proc over gRPC', () => {
  let server: GrpcServerHandle;
  let client: Client;
  let factory: () => ResponsePhases = () => ({});
  const errors: unknown[] = [];

  before(async () => {
    server = await startGrpcServer({
      address: '127.0.0.1:0',
      authorize: () => Promise.reject(new Error('unused')),
      newExchange: () => factory(),
      onError: (err) => errors.push(err),
    });
    client = extProcClient(server.address);
  });
  after(async () => {
    client.close();
    await server.shutdown(0);
  });
  beforeEach(() => {
    errors.length = 0;
  });

  it('answers each message kind with the matching case and reports a complete exchange', async () => {
    const calls: unknown[][] = [];
    const ended: string[] = [];
    factory = () => ({
      requestHeaders: (h, metadata, eos) => {
        calls.push(['requestHeaders', h, metadata, eos]);
        return {
          setHeaders: { 'x-tollgate-tenant': 'marketing' },
          removeHeaders: ['accept-encoding'],
          modeOverride: { responseBody: 'streamed' },
        };
      },
      requestBody: (chunk, eos) => {
        calls.push(['requestBody', chunk.toString(), eos]);
        return { body: Buffer.from('{"model":"gpt-4o","stream_options":{"include_usage":true}}') };
      },
      responseHeaders: (h, eos) => {
        calls.push(['responseHeaders', h[':status'], eos]);
      },
      responseBody: (chunk, eos) => {
        calls.push(['responseBody', chunk.toString(), eos]);
        return Promise.resolve(eos ? { body: Buffer.alloc(0) } : undefined);
      },
      end: (outcome) => {
        ended.push(outcome);
      },
    });
    const s = open(client);

    const rh = await s.ask({
      request_headers: headers({ ':path': '/v1/chat', 'Accept-Encoding': 'gzip' }),
      metadata_context: authzMetadata,
    });
    expect(rh.response).to.equal('request_headers');
    const set = rh.request_headers?.response.header_mutation?.set_headers ?? [];
    expect(
      set.map((o) => [o.header.key, o.header.raw_value.toString(), o.header.value, o.append]),
    ).to.deep.equal([['x-tollgate-tenant', 'marketing', '', { value: false }]]);
    expect(rh.request_headers?.response.header_mutation?.remove_headers).to.deep.equal([
      'accept-encoding',
    ]);
    // A complete mode: the override merged onto the configured default.
    expect(rh.mode_override).to.deep.equal({
      request_header_mode: 1,
      response_header_mode: 1,
      request_body_mode: 0,
      response_body_mode: 1,
      request_trailer_mode: 2,
      response_trailer_mode: 2,
    });

    const rb = await s.ask({
      request_body: { body: Buffer.from('{"model":"gpt-4o"}'), end_of_stream: true },
    });
    expect(rb.response).to.equal('request_body');
    expect(rb.request_body?.response.body_mutation?.body?.toString()).to.contain('include_usage');

    const rt = await s.ask({ request_trailers: { trailers: {} } });
    expect(rt.response).to.equal('request_trailers');

    const sh = await s.ask({ response_headers: headers({ ':status': '200' }) });
    expect(sh.response).to.equal('response_headers');
    expect(sh.response_headers?.response.header_mutation).to.equal(null);
    expect(sh.mode_override).to.equal(null);

    const b1 = await s.ask({
      response_body: { body: Buffer.from('data: 1\n\n'), end_of_stream: false },
    });
    expect(b1.response).to.equal('response_body');
    expect(b1.response_body?.response.body_mutation).to.equal(null);
    expect(ended).to.deep.equal([]);

    const b2 = await s.ask({
      response_body: { body: Buffer.from('data: [DONE]\n\n'), end_of_stream: true },
    });
    expect(b2.response).to.equal('response_body');
    expect(b2.response_body?.response.body_mutation?.body).to.have.length(0);
    expect(ended).to.deep.equal(['complete']);

    expect(calls).to.deep.equal([
      [
        'requestHeaders',
        { ':path': '/v1/chat', 'accept-encoding': 'gzip' },
        { tenant: 'marketing', reserved: 1200 },
        false,
      ],
      ['requestBody', '{"model":"gpt-4o"}', true],
      ['responseHeaders', '200', false],
      ['responseBody', 'data: 1\n\n', false],
      ['responseBody', 'data: [DONE]\n\n', true],
    ]);

    // The last answer is followed by a clean close (status OK), without waiting for Envoy.
    expect(await s.status).to.equal(null);
    s.call.end();
    expect(ended).to.deep.equal(['complete']);
  });

  it('passes everything through with a processor that has no methods', async () => {
    factory = () => ({});
    const s = open(client);
    const rh = await s.ask({ request_headers: headers({ ':path': '/' }, true) });
    expect(rh.response).to.equal('request_headers');
    expect(rh.request_headers?.response.header_mutation).to.equal(null);
    expect(rh.mode_override).to.equal(null);
    const st = await s.ask({ response_trailers: { trailers: {} } });
    expect(st.response).to.equal('response_trailers');
    expect(await s.status).to.equal(null);
    s.call.end();
  });

  it('tells the processor "aborted" exactly once when the client cancels mid-response', async () => {
    const ended: string[] = [];
    let signalEnd!: () => void;
    const endCalled = new Promise<void>((resolve) => (signalEnd = resolve));
    factory = () => ({
      requestHeaders: () => ({ modeOverride: { responseBody: 'streamed' } }),
      end: (outcome) => {
        ended.push(outcome);
        signalEnd();
      },
    });
    const s = open(client);
    await s.ask({ request_headers: headers({ ':path': '/' }) });
    await s.ask({ response_headers: headers({ ':status': '200' }) });
    await s.ask({ response_body: { body: Buffer.from('data: 1\n\n'), end_of_stream: false } });
    expect(ended).to.deep.equal([]);
    s.call.cancel();
    await endCalled;
    expect(ended).to.deep.equal(['aborted']);
  });

  it('calls the exchange complete after the response headers when no body is sent to us', async () => {
    const ended: string[] = [];
    factory = () => ({ end: (outcome) => void ended.push(outcome) });
    const s = open(client);
    await s.ask({ request_headers: headers({ ':path': '/' }) });
    await s.ask({ response_headers: headers({ ':status': '200' }) });
    expect(ended).to.deep.equal(['complete']);
    // The server closes with OK by itself; Envoy's reset after that changes nothing.
    expect(await s.status).to.equal(null);
    s.call.cancel();
    expect(ended).to.deep.equal(['complete']);
  });

  it('keeps the stream open while more messages are due', async () => {
    factory = () => ({ requestHeaders: () => ({ modeOverride: { responseBody: 'streamed' } }) });
    const s = open(client);
    await s.ask({ request_headers: headers({ ':path': '/' }) });
    await s.ask({ response_headers: headers({ ':status': '200' }) });
    await s.ask({ response_body: { body: Buffer.from('data: 1\n\n'), end_of_stream: false } });
    const early = await Promise.race([
      s.status.then(() => 'closed'),
      new Promise((resolve) => setTimeout(() => resolve('open'), 100)),
    ]);
    expect(early).to.equal('open');
    await s.ask({ response_body: { body: Buffer.alloc(0), end_of_stream: true } });
    expect(await s.status).to.equal(null);
  });

  it('ends the stream with INTERNAL when the processor throws, and says "aborted"', async () => {
    const ended: string[] = [];
    factory = () => ({
      responseHeaders: () => {
        throw new Error('processor bug');
      },
      end: (outcome) => {
        ended.push(outcome);
      },
    });
    const s = open(client);
    s.call.write({ response_headers: headers({ ':status': '200' }) });
    const err = await s.status;
    expect(err?.code).to.equal(GrpcStatus.INTERNAL);
    expect(ended).to.deep.equal(['aborted']);
    expect(errors.map((e) => (e as Error).message)).to.deep.equal(['processor bug']);
  });

  it('ends the stream with INTERNAL when creating the processor fails', async () => {
    factory = () => {
      throw new Error('no processor');
    };
    const s = open(client);
    s.call.write({ request_headers: headers({ ':path': '/' }) });
    expect((await s.status)?.code).to.equal(GrpcStatus.INTERNAL);
    expect(errors.map((e) => (e as Error).message)).to.deep.equal(['no processor']);
  });

  it('answers a request body with an ImmediateResponse when the processor says so', async () => {
    factory = () => ({
      requestHeaders: () => ({ modeOverride: { requestBody: 'buffered' } }),
      requestBody: () => ({
        refuse: { denial: deny('internal_error', 'not sent'), details: 'tollgate_output_limit_not_written' },
        // ignored: a refusal replaces the body answer
        body: Buffer.from('never sent'),
      }),
    });
    const s = open(client);
    const rh = await s.ask({ request_headers: headers({ ':path': '/v1/chat/completions' }) });
    expect(rh.response).to.equal('request_headers');
    const rb = await s.ask({ request_body: { body: Buffer.from('{"a":1}'), end_of_stream: true } });
    expect(rb.response).to.equal('immediate_response');
    expect(rb.request_body ?? null).to.equal(null);
    const reply = rb.immediate_response!;
    expect(reply.status.code).to.equal(500);
    expect(JSON.parse(reply.body.toString())).to.deep.equal({
      error: { message: 'not sent', type: 'server_error', param: null, code: 'internal_error' },
    });
    expect(reply.details).to.equal('tollgate_output_limit_not_written');
    // raw_value only, with the overwrite wrapper, as Envoy reads ext_proc header mutations
    expect(
      reply.headers?.set_headers.map((o) => [o.header.key, o.header.raw_value.toString(), o.header.value, o.append]),
    ).to.deep.equal([
      ['content-type', 'application/json', '', { value: false }],
      ['x-tollgate-reason', 'internal_error', '', { value: false }],
    ]);
    s.call.end();
    expect(await s.status).to.equal(null);

    // The same in answer to request headers.
    factory = () => ({
      requestHeaders: () => ({
        refuse: { denial: deny('store_unavailable', 'try later', { headers: { 'retry-after': '1' } }), details: 'tollgate_test' },
        setHeaders: { x: 'y' },
      }),
    });
    const h = open(client);
    const answer = await h.ask({ request_headers: headers({ ':path': '/v1/chat/completions' }) });
    expect(answer.response).to.equal('immediate_response');
    expect(answer.immediate_response?.status.code).to.equal(503);
    expect(answer.immediate_response?.headers?.set_headers.map((o) => o.header.key)).to.deep.equal([
      'retry-after',
      'content-type',
      'x-tollgate-reason',
    ]);
    h.call.end();
    expect(await h.status).to.equal(null);
  });

  it('does not answer in observability mode', async () => {
    const seen: string[] = [];
    factory = () => ({ requestHeaders: () => void seen.push('headers') });
    const s = open(client);
    const answers: unknown[] = [];
    s.call.on('data', (r) => answers.push(r));
    s.call.write({ request_headers: headers({ ':path': '/' }), observability_mode: true });
    s.call.end();
    expect(await s.status).to.equal(null);
    expect(seen).to.deep.equal(['headers']);
    expect(answers).to.deep.equal([]);
  });

  it('in observability mode without protocol_config, reads the body after the response headers (Envoy 1.40 sends none there)', async () => {
    const seen: string[] = [];
    let outcome: string | undefined;
    factory = () => ({
      responseHeaders: () => void seen.push('response headers'),
      responseBody: (chunk: Buffer) => void seen.push(`body ${chunk.toString()}`),
      end: (o) => void (outcome = o),
    });
    const s = open(client);
    s.call.on('data', () => seen.push('an answer'));
    s.call.write({ request_headers: headers({ ':path': '/v1/chat/completions' }), observability_mode: true });
    s.call.write({ response_headers: headers({ ':status': '200' }), observability_mode: true });
    s.call.write({ response_body: { body: Buffer.from('data: 1'), end_of_stream: false }, observability_mode: true });
    s.call.write({ response_body: { body: Buffer.from('data: 2'), end_of_stream: true }, observability_mode: true });
    expect(await s.status).to.equal(null);
    expect(seen).to.deep.equal(['response headers', 'body data: 1', 'body data: 2']);
    expect(outcome).to.equal('complete');
  });

  it('in observability mode, a stream Envoy ends before the response body ends is aborted', async () => {
    let outcome: string | undefined;
    factory = () => ({ end: (o) => void (outcome = o) });
    const s = open(client);
    s.call.write({ request_headers: headers({ ':path': '/v1/chat/completions' }), observability_mode: true });
    s.call.write({ response_headers: headers({ ':status': '200' }), observability_mode: true });
    s.call.end();
    expect(await s.status).to.equal(null);
    expect(outcome).to.equal('aborted');
  });
});

// grpc-js's forceShutdown alone leaves them running (with channelz off it knows no sessions).
describe('ext_proc streams cut by the end of the shutdown grace period', () => {
  it('have ended their exchange (and so started its settlement) when shutdown resolves', async () => {
    const ended: string[] = [];
    const server = await startGrpcServer({
      address: '127.0.0.1:0',
      authorize: () => Promise.reject(new Error('unused')),
      newExchange: () => ({ end: (outcome) => void ended.push(outcome) }),
    });
    const client = extProcClient(server.address);
    try {
      // Two streams in the middle of their response: Envoy would still be sending chunks.
      const streams = [open(client), open(client)];
      for (const s of streams) await s.ask({ request_headers: headers({ ':path': '/v1/chat/completions' }) });
      await server.shutdown(200);
      expect(ended).to.deep.equal(['aborted', 'aborted']);
      for (const s of streams) expect((await s.status)?.code).to.equal(GrpcStatus.CANCELLED);
    } finally {
      client.close();
    }
  });
});
