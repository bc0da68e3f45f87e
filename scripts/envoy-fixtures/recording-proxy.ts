/**
 * A gRPC proxy that sits between Envoy and the sidecar and keeps every message byte for byte.
 * It never decodes what it forwards: both services are registered with identity serializers,
 * so the recorded bytes are exactly what Envoy sent and what Envoy was sent. gRPC metadata
 * (headers such as grpc-timeout) is not forwarded: the sidecar reads none.
 */
import {
  Client,
  Server,
  ServerCredentials,
  credentials,
  status as GrpcStatus,
} from '@grpc/grpc-js';
import type {
  MethodDefinition,
  ServerDuplexStream,
  ServerUnaryCall,
  ServiceError,
  StatusObject,
  sendUnaryData,
} from '@grpc/grpc-js';
import { SERVICE_NAMES } from '../../src/edge/protos.js';

export const CHECK_PATH = `/${SERVICE_NAMES.authorization}/Check`;
export const PROCESS_PATH = `/${SERVICE_NAMES.externalProcessor}/Process`;

/** The sidecar accepts up to 8 MiB; grpc-js would refuse more than 4 MiB by default. */
const MAX_MESSAGE_BYTES = 8 * 1024 * 1024;
const CHANNEL_OPTIONS = {
  'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
  'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
};

export interface RecordedCheck {
  readonly request: Buffer;
  response?: Buffer;
  /** Set when the sidecar ended the call with an error status. */
  error?: string;
}

export interface RecordedMessage {
  readonly direction: 'in' | 'out';
  readonly bytes: Buffer;
}

export interface RecordedStream {
  /** In the order the proxy saw them: `in` from Envoy, `out` from the sidecar. */
  readonly messages: RecordedMessage[];
  /** The status the sidecar closed its side with (undefined while open). */
  status?: { code: number; details: string };
  /** Envoy reset the stream (it does so after the last answer, even on a complete stream). */
  envoyReset?: boolean;
  /** Both sides are over: the sidecar's status arrived and Envoy's call finished or was reset. */
  readonly done: Promise<void>;
}

/** Where calls are filed: the case currently being sent through Envoy. */
export interface CallSink {
  check(record: RecordedCheck): void;
  stream(record: RecordedStream): void;
}

/** No forwarded call outlives this, whatever the sidecar does. */
const FORWARD_DEADLINE_MS = 15_000;
/** After Envoy reset a stream, how long the sidecar gets to report its own status. */
const RESET_GRACE_MS = 1_000;

const raw = (bytes: Buffer): Buffer => bytes;

function rawMethod(path: string, streaming: boolean): MethodDefinition<Buffer, Buffer> {
  return {
    path,
    requestStream: streaming,
    responseStream: streaming,
    requestSerialize: raw,
    requestDeserialize: raw,
    responseSerialize: raw,
    responseDeserialize: raw,
  };
}

export interface RecordingProxy {
  readonly port: number;
  close(): Promise<void>;
}

/** Starts the proxy on 127.0.0.1 (free port), forwarding to `target` (host:port). */
export async function startRecordingProxy(target: string, sink: CallSink): Promise<RecordingProxy> {
  const client = new Client(target, credentials.createInsecure(), CHANNEL_OPTIONS);
  const server = new Server(CHANNEL_OPTIONS);

  server.addService(
    { Check: rawMethod(CHECK_PATH, false) },
    {
      Check: (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => {
        const record: RecordedCheck = { request: call.request };
        sink.check(record);
        client.makeUnaryRequest(
          CHECK_PATH,
          raw,
          raw,
          call.request,
          { deadline: Date.now() + FORWARD_DEADLINE_MS },
          (err: ServiceError | null, res?: Buffer) => {
            if (err !== null || res === undefined) {
              record.error = err?.message ?? 'no response';
              callback(err ?? { code: GrpcStatus.INTERNAL, details: record.error });
              return;
            }
            record.response = res;
            callback(null, res);
          },
        );
      },
    },
  );

  server.addService(
    { Process: rawMethod(PROCESS_PATH, true) },
    {
      Process: (call: ServerDuplexStream<Buffer, Buffer>) => {
        const messages: RecordedMessage[] = [];
        let sidecarDone!: () => void;
        let envoyDone!: () => void;
        const sidecarOver = new Promise<void>((resolve) => (sidecarDone = resolve));
        const envoyOver = new Promise<void>((resolve) => (envoyDone = resolve));
        const record: RecordedStream = {
          messages,
          done: Promise.all([sidecarOver, envoyOver]).then(() => undefined),
        };
        sink.stream(record);
        for (const event of ['finish', 'cancelled', 'close', 'error']) call.once(event, envoyDone);

        const upstream = client.makeBidiStreamRequest(PROCESS_PATH, raw, raw, {
          deadline: Date.now() + FORWARD_DEADLINE_MS,
        });
        let forwardedEnd = false;
        call.on('data', (bytes: Buffer) => {
          messages.push({ direction: 'in', bytes });
          upstream.write(bytes);
        });
        let halfClosed = false;
        call.on('end', () => {
          halfClosed = true;
          upstream.end();
        });
        // Envoy resets even a complete stream, often before the sidecar's OK status has come
        // through this extra hop. Passing the reset on at once would cancel the sidecar's call
        // and hide that status, so half-close first and cancel only if it does not arrive.
        // After the last answer the sidecar does the same on either: nothing (it has ended).
        let cancelTimer: NodeJS.Timeout | undefined;
        call.on('cancelled', () => {
          record.envoyReset = true;
          forwardedEnd = true; // nothing can be sent to Envoy any more
          if (!halfClosed) upstream.end();
          cancelTimer = setTimeout(() => upstream.cancel(), RESET_GRACE_MS);
        });
        upstream.on('data', (bytes: Buffer) => {
          messages.push({ direction: 'out', bytes });
          call.write(bytes);
        });
        upstream.on('status', (s: StatusObject) => {
          clearTimeout(cancelTimer);
          record.status = { code: s.code, details: s.details };
          sidecarDone();
          if (forwardedEnd) return;
          forwardedEnd = true;
          // The sidecar's final status, passed on as Envoy would have seen it directly.
          if (s.code === GrpcStatus.OK) call.end();
          else call.emit('error', { code: s.code, details: s.details });
        });
        // Errors also arrive as a status; without a listener grpc-js would throw them.
        upstream.on('error', () => undefined);
      },
    },
  );

  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, bound) =>
      err ? reject(err) : resolve(bound),
    );
  });

  return {
    port,
    close: async () => {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 2000);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      client.close();
    },
  };
}
