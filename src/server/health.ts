/**
 * grpc.health.v1 for the sidecar: SERVING only while the server is up and the application
 * says it is ready; NOT_SERVING from the moment shutdown starts, so load balancers and Envoy's
 * health checks stop sending traffic before the server drains.
 */
import { status as GrpcStatus } from '@grpc/grpc-js';
import type {
  sendUnaryData,
  ServerUnaryCall,
  ServerWritableStream,
  UntypedServiceImplementation,
} from '@grpc/grpc-js';

export const SERVING_STATUS = {
  UNKNOWN: 0,
  SERVING: 1,
  NOT_SERVING: 2,
  SERVICE_UNKNOWN: 3,
} as const;
type ServingStatus = (typeof SERVING_STATUS)[keyof typeof SERVING_STATUS];

interface HealthRequest {
  service?: string;
}
interface HealthResponse {
  status: ServingStatus;
}

/** How often Watch streams re-read `ready()`, which may change without telling us. */
const WATCH_POLL_MS = 1000;

export class HealthState {
  readonly #services: ReadonlySet<string>;
  readonly #ready: () => boolean;
  #serving = true;
  /** One entry per open Watch stream. */
  readonly #watches = new Set<{ push(): void; close(): void }>();
  #poll: NodeJS.Timeout | undefined;

  /** `services`: names answered besides "" (the whole server). */
  constructor(services: readonly string[], ready: () => boolean = () => true) {
    this.#services = new Set(['', ...services]);
    this.#ready = ready;
  }

  /** The status of `service`, or undefined when the name is unknown. */
  status(service: string): ServingStatus | undefined {
    if (!this.#services.has(service)) return undefined;
    let ready: boolean;
    try {
      ready = this.#serving && this.#ready();
    } catch {
      ready = false; // a failing readiness probe means not ready
    }
    return ready ? SERVING_STATUS.SERVING : SERVING_STATUS.NOT_SERVING;
  }

  setServing(serving: boolean): void {
    this.#serving = serving;
    for (const watch of [...this.#watches]) watch.push();
  }

  /** Ends every Watch stream after a last update: they would keep a graceful shutdown waiting. */
  closeWatches(): void {
    for (const watch of [...this.#watches]) watch.close();
  }

  #watch(call: ServerWritableStream<HealthRequest, HealthResponse>): void {
    const service = call.request.service ?? '';
    let last: ServingStatus | undefined;
    const watch = {
      push: (): void => {
        const current = this.status(service) ?? SERVING_STATUS.SERVICE_UNKNOWN;
        if (current === last || call.cancelled) return;
        last = current;
        call.write({ status: current });
      },
      close: (): void => {
        watch.push();
        forget();
        if (!call.cancelled) call.end();
      },
    };
    const forget = (): void => {
      this.#watches.delete(watch);
      if (this.#watches.size === 0 && this.#poll !== undefined) {
        clearInterval(this.#poll);
        this.#poll = undefined;
      }
    };
    this.#watches.add(watch);
    this.#poll ??= setInterval(() => {
      for (const w of [...this.#watches]) w.push();
    }, WATCH_POLL_MS).unref();
    call.on('cancelled', forget);
    watch.push();
  }

  /** The Health service implementation for `server.addService`. */
  implementation(): UntypedServiceImplementation {
    return {
      Check: (
        call: ServerUnaryCall<HealthRequest, HealthResponse>,
        callback: sendUnaryData<HealthResponse>,
      ) => {
        const status = this.status(call.request.service ?? '');
        if (status === undefined) {
          callback({ code: GrpcStatus.NOT_FOUND, details: 'unknown service' });
          return;
        }
        callback(null, { status });
      },
      Watch: (call: ServerWritableStream<HealthRequest, HealthResponse>) => this.#watch(call),
    };
  }
}
