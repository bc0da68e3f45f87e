/**
 * OpenTelemetry instruments, exported in Prometheus text format by `server/metrics-http.ts`.
 * Labels are bounded: reasons and results come from closed unions; tenants and models come
 * from configuration or are capped (see `boundedLabel`).
 */
import type { Attributes, Counter, Histogram } from '@opentelemetry/api';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import type { Decision } from '../pipeline/types.js';

/** Caps the number of distinct values a free-form label can take; the rest become `other`. */
export class BoundedLabel {
  private readonly seen = new Set<string>();
  private readonly cap: number;
  constructor(cap: number) {
    this.cap = cap;
  }
  value(v: string | undefined): string {
    if (v === undefined || v === '') return 'none';
    if (this.seen.has(v)) return v;
    if (this.seen.size >= this.cap) return 'other';
    this.seen.add(v);
    return v;
  }
}

export class Metrics {
  readonly exporter: PrometheusExporter;
  private readonly provider: MeterProvider;
  private readonly decisions: Counter;
  private readonly decisionLatency: Histogram;
  readonly tokenUsage: Histogram;
  readonly tenants = new BoundedLabel(200);
  readonly models = new BoundedLabel(100);

  constructor() {
    this.exporter = new PrometheusExporter({ preventServerStart: true });
    this.provider = new MeterProvider({ readers: [this.exporter] });
    const meter = this.provider.getMeter('tollgate');
    this.decisions = meter.createCounter('tollgate.decisions', {
      description: 'ext_authz decisions by result and reason',
    });
    this.decisionLatency = meter.createHistogram('tollgate.decision.duration', {
      description: 'Time to decide one Check request',
      unit: 's',
      advice: { explicitBucketBoundaries: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1] },
    });
    this.tokenUsage = meter.createHistogram('gen_ai.client.token.usage', {
      description: 'Tokens used per request (GenAI semantic conventions)',
      unit: '{token}',
      advice: { explicitBucketBoundaries: [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576] },
    });
  }

  recordDecision(decision: Decision, latencyMs: number): void {
    const attrs: Attributes = decision.deny
      ? { result: 'deny', reason: decision.deny.reason }
      : { result: 'allow', reason: 'allowed' };
    this.decisions.add(1, attrs);
    this.decisionLatency.record(latencyMs / 1000, { result: attrs['result'] as string });
  }

  async shutdown(): Promise<void> {
    await this.provider.shutdown();
  }
}
