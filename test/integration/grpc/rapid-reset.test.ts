/**
 * The sidecar's gRPC port keeps Node's HTTP/2 rapid-reset guard (CVE-2023-44487; nghttp2's
 * default: 1000 RST_STREAM frames per connection, refilled at 33 per second). Tollgate does not
 * loosen it: Envoy's legitimate resets stay under it because Envoy recycles its connection to
 * Tollgate every 500 streams (envoy/local.yaml). A raw HTTP/2 client that opens gRPC calls and
 * cancels each at once is still cut off with GOAWAY, and the server keeps serving others.
 */
import { expect } from 'chai';
import { constants } from 'node:http2';
import { startGrpcServer, type GrpcServerHandle } from '../../../src/server/grpc.js';
import { rapidReset } from '../../helpers/storm.js';
import { healthClient, unary } from './clients.js';

describe('rapid-reset attack on the gRPC port', () => {
  let server: GrpcServerHandle;
  let checks = 0;
  let streams = 0;

  before(async () => {
    server = await startGrpcServer({
      address: '127.0.0.1:0',
      authorize: () => {
        checks += 1;
        return new Promise(() => undefined); // never answers: the attacker cancels anyway
      },
      newExchange: () => {
        streams += 1;
        return {};
      },
    });
  });
  after(() => server.shutdown(0));

  for (const [name, path] of [
    ['Check', '/envoy.service.auth.v3.Authorization/Check'],
    ['Process', '/envoy.service.ext_proc.v3.ExternalProcessor/Process'],
  ] as const) {
    it(`sends GOAWAY to a client that opens and cancels ${name} calls in a loop`, async () => {
      const attack = await rapidReset({ port: server.port, path, maxStreams: 5000, maxMs: 5000 });
      expect(attack.goaway, JSON.stringify(attack)).to.not.equal(undefined);
      // ENHANCE_YOUR_CALM or INTERNAL_ERROR, depending on the nghttp2 release in Node.
      expect([constants.NGHTTP2_ENHANCE_YOUR_CALM, constants.NGHTTP2_INTERNAL_ERROR]).to.include(
        attack.goaway?.code,
      );
      // Cut off right after the burst of 1000, not after the 5000 it would have sent.
      expect(attack.opened).to.be.below(1500);
      expect(attack.goaway?.lastStreamId ?? 0).to.be.below(2 * 1100);
    });
  }

  it('never cuts off a connection that carries 500 streams, every one of them reset (Envoy)', async () => {
    const envoyLike = await rapidReset({
      port: server.port,
      path: '/envoy.service.ext_proc.v3.ExternalProcessor/Process',
      maxStreams: 500,
      maxMs: 5000,
    });
    expect(envoyLike).to.deep.equal({ opened: 500, closed: false });
  });

  it('keeps serving other connections after cutting an attacker off', async () => {
    expect(checks + streams).to.be.above(0);
    const client = healthClient(server.address);
    try {
      const res = await unary<{ status: number }>(client, 'Check', { service: '' });
      expect(res.status).to.equal(1); // SERVING
    } finally {
      client.close();
    }
  });
});
