/**
 * One gRPC server on one port: ext_authz (Check), ext_proc (Process) and grpc.health.v1.
 * Shutdown is polite, gentlest first: health flips to NOT_SERVING; the server keeps answering
 * until no Check call, ext_proc stream or just-allowed request is left (a request allowed a
 * moment ago still needs its ext_proc stream, which tryShutdown would refuse);
 * then tryShutdown, and at the end of the grace period forceShutdown, and every ext_proc stream
 * still open is cancelled (so its exchange has ended, and its settlement started, when
 * shutdown resolves).
 */
import { DEFAULT_MAX_REQUEST_BYTES } from '../config/schema.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { Server, ServerCredentials, status as GrpcStatus } from '@grpc/grpc-js';
import type { sendUnaryData, ServerDuplexStream, ServerUnaryCall, ServiceDefinition } from '@grpc/grpc-js';
import { internalErrorResponse, toCheckResponse, toGatewayRequest } from '../edge/authz-adapter.js';
import { encodeCheckResponse } from '../edge/check-encode.js';
import { serveProcessStream } from '../edge/extproc-adapter.js';
import type { ProcessingModeSpec } from '../response/mode.js';
import type { ResponsePhases } from '../response/phases.js';
import { SERVICE_NAMES, services } from '../edge/protos.js';
import type {
  CheckRequest,
  CheckResponse,
  ProcessingRequest,
  ProcessingResponse,
} from '../edge/protos.js';
import type { Decision } from '../domain/decision.js';
import type { InboundRequest } from '../domain/request.js';
import { HealthState } from './health.js';

/** How often shutdown looks whether the work in flight is done. */
const DRAIN_POLL_MS = 20;

/** Room beside the request body in one Check message: headers, metadata, framing. */
const CHECK_OVERHEAD_BYTES = 1024 * 1024;

export interface GrpcServerOptions {
  /** host:port; port 0 takes a free port (the handle reports the real one). */
  readonly address: string;
  /**
   * The largest request body Envoy hands to a Check (`server.maxRequestBytes`); grpc-js would
   * otherwise refuse any message over 4 MiB. Default DEFAULT_MAX_REQUEST_BYTES.
   */
  readonly maxRequestBytes?: number;
  authorize(req: InboundRequest): Promise<Decision>;
  /** A fresh processor for each ext_proc stream (one per HTTP request). */
  newExchange(): ResponsePhases;
  readonly health?: { ready(): boolean };
  /** The ext_proc mode configured in Envoy; per-request overrides are merged onto it. */
  readonly processingMode?: ProcessingModeSpec;
  /** Told about failures that were answered on the wire (500 deny, INTERNAL stream close). */
  onError?(err: unknown, where: 'authorize' | 'process'): void;
  /**
   * Work the server cannot see that must end before it stops taking calls: a request allowed
   * a moment ago whose ext_proc stream may still open here. Default: none.
   */
  pendingWork?(): number;
}

export interface GrpcServerHandle {
  readonly port: number;
  /** host:port with the real port. */
  readonly address: string;
  setServing(serving: boolean): void;
  /** Flip health, drain calls in flight, force-close after `graceMs`. Idempotent. */
  shutdown(graceMs: number): Promise<void>;
}

function splitAddress(address: string): { host: string; port: string } {
  const at = address.lastIndexOf(':');
  if (at <= 0) throw new Error(`invalid gRPC address "${address}" (want host:port)`);
  return { host: address.slice(0, at), port: address.slice(at + 1) };
}

export async function startGrpcServer(options: GrpcServerOptions): Promise<GrpcServerHandle> {
  const { host } = splitAddress(options.address);
  const defs = services();
  const report = (where: 'authorize' | 'process') => (err: unknown) => {
    try {
      options.onError?.(err, where);
    } catch {
      // a failing reporter must not turn into an unanswered call
    }
  };
  const probe = options.health;
  const health = new HealthState(
    [SERVICE_NAMES.authorization, SERVICE_NAMES.externalProcessor, SERVICE_NAMES.health],
    probe ? () => probe.ready() : undefined,
  );

  const server = new Server({
    'grpc.max_receive_message_length': (options.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES) + CHECK_OVERHEAD_BYTES,
    // Per-call channelz bookkeeping nobody reads (no channelz service is exposed).
    'grpc.enable_channelz': 0,
  });
  // Calls in flight, for a drain that waits for them before refusing new ones.
  let checks = 0;
  let streams = 0;
  // The streams themselves, to cut at the end of the grace period: forceShutdown cannot, as
  // grpc-js lists a server's sessions only while channelz is on (it is off, above).
  const openStreams = new Set<ServerDuplexStream<ProcessingRequest, ProcessingResponse>>();

  // The allow/deny answer of every Check is written by our own encoder: the same bytes as
  // proto-loader's serializer at a fraction of its CPU (edge/check-encode.ts).
  const authorization = {
    ...defs.authorization,
    Check: { ...defs.authorization['Check'], responseSerialize: encodeCheckResponse },
  } as ServiceDefinition;
  server.addService(authorization, {
    Check: (
      call: ServerUnaryCall<CheckRequest, CheckResponse>,
      callback: sendUnaryData<CheckResponse>,
    ) => {
      checks += 1;
      void check(call.request).then((response) => {
        checks -= 1;
        callback(null, response);
      });
    },
  });

  // Any failure becomes a normal 500 deny: an RPC error would make Envoy answer status_on_error
  // with an empty body instead of the OpenAI envelope.
  const check = async (request: CheckRequest): Promise<CheckResponse> => {
    try {
      return toCheckResponse(await options.authorize(toGatewayRequest(request)));
    } catch (err) {
      report('authorize')(err);
      return internalErrorResponse();
    }
  };

  server.addService(defs.externalProcessor, {
    Process: (call: ServerDuplexStream<ProcessingRequest, ProcessingResponse>) => {
      streams += 1;
      openStreams.add(call);
      let open = true;
      const closed = (): void => {
        if (open) streams -= 1;
        open = false;
        openStreams.delete(call);
      };
      // Whichever comes first: Envoy cancels, our side ends (status sent), or the call fails.
      for (const event of ['cancelled', 'finish', 'error', 'close']) call.once(event, closed);
      let processor: ResponsePhases;
      try {
        processor = options.newExchange();
      } catch (err) {
        report('process')(err);
        // grpc-js turns an 'error' event on a server stream into the call's final status.
        call.emit('error', {
          code: GrpcStatus.INTERNAL,
          details: 'tollgate: external processing failed',
        });
        return;
      }
      serveProcessStream(call, processor, {
        ...(options.processingMode !== undefined ? { baseMode: options.processingMode } : {}),
        onError: report('process'),
      });
    },
  });

  server.addService(defs.health, health.implementation());

  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(options.address, ServerCredentials.createInsecure(), (err, bound) =>
      err ? reject(err) : resolve(bound),
    );
  });

  let stopping: Promise<void> | undefined;
  return {
    port,
    address: `${host}:${port}`,
    setServing: (serving) => health.setServing(serving),
    shutdown: (graceMs) => {
      stopping ??= (async () => {
        const deadline = Date.now() + graceMs;
        health.setServing(false);
        health.closeWatches();
        const busy = (): boolean => checks + streams + (options.pendingWork?.() ?? 0) > 0;
        while (busy() && Date.now() < deadline) await sleep(DRAIN_POLL_MS);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            server.forceShutdown();
            // Each stream still open ends as cancelled: its exchange ends `aborted` now and
            // its (estimated) settlement starts before the caller waits for settlements.
            for (const call of openStreams) call.emit('error', { code: GrpcStatus.CANCELLED, details: 'tollgate: shutdown grace period over' });
            resolve();
          }, Math.max(0, deadline - Date.now()));
          timer.unref();
          server.tryShutdown(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      })();
      return stopping;
    },
  };
}
