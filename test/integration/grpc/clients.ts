/**
 * gRPC clients for the edge tests, built from our own protos. They decode with
 * `defaults: true`, so an unset wrapper shows as `null` and a sent-but-empty one as
 * `{ value: false }`: the difference Envoy's overwrite rule depends on.
 */
import { credentials, makeGenericClientConstructor } from '@grpc/grpc-js';
import type { Client, ServiceDefinition } from '@grpc/grpc-js';
import { loadProtos, SERVICE_NAMES } from '../../../src/edge/protos.js';

const wireDefs = loadProtos({ defaults: true });

function client(name: string, address: string): Client {
  const Ctor = makeGenericClientConstructor(wireDefs[name] as unknown as ServiceDefinition, name);
  return new Ctor(address, credentials.createInsecure());
}

/** Unary call as a promise; resolves with the decoded response or rejects with the gRPC error. */
export function unary<Res>(c: Client, method: string, request: unknown): Promise<Res> {
  return new Promise((resolve, reject) => {
    const fn = (
      c as unknown as Record<
        string,
        (req: unknown, cb: (err: Error | null, res: Res) => void) => void
      >
    )[method];
    if (fn === undefined) throw new Error(`no method ${method}`);
    fn.call(c, request, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

export const authzClient = (address: string): Client =>
  client(SERVICE_NAMES.authorization, address);
export const extProcClient = (address: string): Client =>
  client(SERVICE_NAMES.externalProcessor, address);
export const healthClient = (address: string): Client => client(SERVICE_NAMES.health, address);
