import { expect } from 'chai';
import { status as GrpcStatus } from '@grpc/grpc-js';
import type { Client, ClientReadableStream, ServiceError } from '@grpc/grpc-js';
import { startGrpcServer } from '../../../src/server/grpc.js';
import type { GrpcServerHandle } from '../../../src/server/grpc.js';
import { healthClient, unary } from './clients.js';

const SERVING = 1;
const NOT_SERVING = 2;
const SERVICE_UNKNOWN = 3;

interface HealthResponse {
  status: number;
}

function watch(client: Client, service: string): ClientReadableStream<HealthResponse> {
  const fn = (
    client as unknown as Record<string, (req: unknown) => ClientReadableStream<HealthResponse>>
  )['Watch'];
  if (fn === undefined) throw new Error('no Watch');
  return fn.call(client, { service });
}

/** Collects Watch updates; `next()` resolves with the next one. */
function updates(stream: ClientReadableStream<HealthResponse>): {
  next(): Promise<number>;
  ended: Promise<void>;
} {
  const queue: number[] = [];
  const waiting: Array<(status: number) => void> = [];
  stream.on('data', (msg: HealthResponse) => {
    const waiter = waiting.shift();
    if (waiter) waiter(msg.status);
    else queue.push(msg.status);
  });
  const ended = new Promise<void>((resolve) => {
    stream.on('end', resolve);
    stream.on('error', () => resolve());
  });
  return {
    next: () => {
      const queued = queue.shift();
      return queued !== undefined
        ? Promise.resolve(queued)
        : new Promise((resolve) => waiting.push(resolve));
    },
    ended,
  };
}

describe('grpc.health.v1', () => {
  let server: GrpcServerHandle;
  let client: Client;
  let ready = true;

  before(async () => {
    server = await startGrpcServer({
      address: '127.0.0.1:0',
      authorize: () => Promise.reject(new Error('unused')),
      newExchange: () => ({}),
      health: { ready: () => ready },
    });
    client = healthClient(server.address);
  });
  after(async () => {
    client.close();
    await server.shutdown(0);
  });

  const check = (service: string) => unary<HealthResponse>(client, 'Check', { service });

  it('answers SERVING for the server and each service name while ready', async () => {
    for (const service of [
      '',
      'envoy.service.auth.v3.Authorization',
      'envoy.service.ext_proc.v3.ExternalProcessor',
      'grpc.health.v1.Health',
    ]) {
      expect((await check(service)).status, service).to.equal(SERVING);
    }
  });

  it('answers NOT_SERVING while the application is not ready', async () => {
    ready = false;
    try {
      expect((await check('')).status).to.equal(NOT_SERVING);
    } finally {
      ready = true;
    }
  });

  it('ends Check on an unknown service with NOT_FOUND', async () => {
    const err = await check('no.such.Service').then(
      () => undefined,
      (e: ServiceError) => e,
    );
    expect(err?.code).to.equal(GrpcStatus.NOT_FOUND);
  });

  it('streams changes to watchers, SERVICE_UNKNOWN for unknown names', async () => {
    const stream = watch(client, 'envoy.service.auth.v3.Authorization');
    const seen = updates(stream);
    expect(await seen.next()).to.equal(SERVING);
    server.setServing(false);
    expect(await seen.next()).to.equal(NOT_SERVING);
    server.setServing(true);
    expect(await seen.next()).to.equal(SERVING);
    stream.cancel();

    const unknown = watch(client, 'nope');
    expect(await updates(unknown).next()).to.equal(SERVICE_UNKNOWN);
    unknown.cancel();
  });

  it('flips to NOT_SERVING and ends watches when shutdown starts', async () => {
    const other = await startGrpcServer({
      address: '127.0.0.1:0',
      authorize: () => Promise.reject(new Error('unused')),
      newExchange: () => ({}),
    });
    const otherClient = healthClient(other.address);
    try {
      const seen = updates(watch(otherClient, ''));
      expect(await seen.next()).to.equal(SERVING);
      const started = Date.now();
      const stopped = other.shutdown(5000);
      expect(await seen.next()).to.equal(NOT_SERVING);
      // The watch ends, so the graceful shutdown does not wait for the grace period.
      await seen.ended;
      await stopped;
      expect(Date.now() - started).to.be.below(4000);
    } finally {
      otherClient.close();
      await other.shutdown(0);
    }
  });
});
