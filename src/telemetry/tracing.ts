/**
 * Traces: each ext_authz Check continues the trace the client (or Envoy) started, with one
 * child span per pipeline stage. Export happens only when the standard `OTEL_*` variables ask
 * for it; otherwise there is no tracer at all and the Check skips every span call, so a
 * deployment without a collector pays nothing.
 *
 * Context is passed explicitly (parent span → child), never through a global context manager:
 * Tollgate registers nothing global, so a host that embeds it keeps its own OpenTelemetry setup.
 */
import {
  createTraceState,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
  type Attributes,
  type Context,
  type Span,
  type SpanContext,
  type Tracer,
  type TracerProvider,
} from '@opentelemetry/api';

/** A provider the Tracing can flush and stop (the SDK's BasicTracerProvider is one). */
export interface ManagedTracerProvider extends TracerProvider {
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
}

/** How a stage ended, for span status and the per-stage latency metric. */
export type StageOutcome = 'pass' | 'deny' | 'error';

/** The spans of one Check: the request span and its stage children. */
export interface CheckTrace {
  /** The trace id, for the audit line (log ↔ trace correlation). */
  readonly traceId: string;
  /** Starts a child span; `end` it with the stage's outcome. */
  stage(name: string): { end(outcome: StageOutcome, err?: unknown): void };
  /** Ends the request span with the decision's attributes. */
  end(attributes: Attributes, denied: boolean): void;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/**
 * Parses a W3C `traceparent` header (Trace Context level 1). Returns undefined for anything
 * malformed, so a bad header starts a new trace instead of failing the request.
 */
export function parseTraceparent(
  header: string | undefined,
  tracestate?: string,
): SpanContext | undefined {
  if (header === undefined) return undefined;
  const m = TRACEPARENT.exec(header.trim());
  if (m === null) return undefined;
  const [, version, traceId, spanId, flags, rest] = m as unknown as [
    string,
    string,
    string,
    string,
    string,
    string | undefined,
  ];
  // Version ff is forbidden; version 00 has exactly four fields. Later versions may add fields.
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  if (/^0+$/.test(traceId) || /^0+$/.test(spanId)) return undefined;
  return {
    traceId,
    spanId,
    traceFlags: parseInt(flags, 16) & TraceFlags.SAMPLED,
    isRemote: true,
    ...(tracestate !== undefined && tracestate !== ''
      ? { traceState: createTraceState(tracestate) }
      : {}),
  };
}

export class Tracing {
  private readonly tracer: Tracer | undefined;
  private readonly provider: ManagedTracerProvider | undefined;

  /** No provider: tracing off (every method is a no-op and `startCheck` returns undefined). */
  constructor(provider?: ManagedTracerProvider) {
    this.provider = provider;
    this.tracer = provider?.getTracer('tollgate');
  }

  get enabled(): boolean {
    return this.tracer !== undefined;
  }

  /**
   * The request span of one Check, child of the `traceparent` in `headers` when there is one.
   * Undefined when tracing is off.
   */
  startCheck(
    headers: Readonly<Record<string, string>>,
    attributes: Attributes,
  ): CheckTrace | undefined {
    const tracer = this.tracer;
    if (tracer === undefined) return undefined;
    const remote = parseTraceparent(headers['traceparent'], headers['tracestate']);
    const parent: Context = remote ? trace.setSpanContext(ROOT_CONTEXT, remote) : ROOT_CONTEXT;
    const root = tracer.startSpan('tollgate.check', { kind: SpanKind.SERVER, attributes }, parent);
    const inside = trace.setSpan(parent, root);
    return {
      traceId: root.spanContext().traceId,
      stage: (name) => {
        const span = tracer.startSpan(name, { attributes: { 'tollgate.stage': name } }, inside);
        return { end: (outcome, err) => endStage(span, outcome, err) };
      },
      end: (attrs, denied) => {
        root.setAttributes(attrs);
        // A deny is a correct answer, not a failure of Tollgate: only internal errors are ERROR.
        if (denied && attrs['tollgate.reason'] === 'internal_error')
          root.setStatus({ code: SpanStatusCode.ERROR });
        root.end();
      },
    };
  }

  /** Exports what is buffered; call before exit. */
  async shutdown(): Promise<void> {
    await this.provider?.shutdown();
  }
}

function endStage(span: Span, outcome: StageOutcome, err: unknown): void {
  span.setAttribute('tollgate.outcome', outcome);
  if (outcome === 'error') {
    span.setStatus({ code: SpanStatusCode.ERROR });
    if (err instanceof Error) span.recordException(err);
  }
  span.end();
}

/** Whether the environment asks for OTLP trace export. */
export function wantsOtlpTraces(env: NodeJS.ProcessEnv): boolean {
  if ((env['OTEL_SDK_DISABLED'] ?? '').trim().toLowerCase() === 'true') return false;
  const exporters = (env['OTEL_TRACES_EXPORTER'] ?? '')
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== '');
  if (exporters.length > 0) return exporters.includes('otlp');
  // Unset exporter: only an explicit endpoint turns export on. The spec's default (`otlp` to
  // localhost:4318) would make every sidecar without a collector retry a dead port forever.
  const endpoint = env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'] ?? env['OTEL_EXPORTER_OTLP_ENDPOINT'];
  return endpoint !== undefined && endpoint.trim() !== '';
}

/**
 * Tracing as the environment configures it: OTLP over HTTP (JSON) with a batch processor when
 * `wantsOtlpTraces`, off otherwise. The exporter and the SDK read the rest of the standard
 * variables themselves (endpoint, headers, OTEL_BSP_*, OTEL_TRACES_SAMPLER, …).
 */
export async function tracingFromEnv(env: NodeJS.ProcessEnv = process.env): Promise<Tracing> {
  if (!wantsOtlpTraces(env)) return new Tracing();
  // Loaded only when asked for: a sidecar without a collector never even loads the SDK.
  const [
    { OTLPTraceExporter },
    { detectResources, envDetector, resourceFromAttributes },
    { BasicTracerProvider, BatchSpanProcessor },
  ] = await Promise.all([
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/sdk-trace-base'),
  ]);
  // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over our default name.
  const resource = resourceFromAttributes({ 'service.name': 'tollgate' }).merge(
    detectResources({ detectors: [envDetector] }),
  );
  const provider = new BasicTracerProvider({
    resource,
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())],
  });
  return new Tracing(provider);
}
