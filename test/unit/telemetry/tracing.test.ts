/**
 * Traces continue the caller's `traceparent` with one span per stage, and exist only when the
 * standard OTEL_* variables ask for export.
 */
import { expect } from 'chai';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import {
  parseTraceparent,
  tracingFromEnv,
  Tracing,
  wantsOtlpTraces,
} from '../../../src/telemetry/tracing.js';
import { chat, gateway, memoryTracing } from './helpers.js';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';
const TRACEPARENT = `00-${TRACE_ID}-${PARENT_ID}-01`;

function byName(spans: readonly ReadableSpan[]): Map<string, ReadableSpan> {
  return new Map(spans.map((s) => [s.name, s]));
}

describe('telemetry/tracing: spans of a Check', () => {
  it('continues the incoming traceparent: a request span under it and one child per stage', async () => {
    const { tracing, exporter } = memoryTracing();
    const { gateway: gw } = gateway({ tracing });
    await gw.decide(chat('ann', 'gpt-4o', { traceparent: TRACEPARENT, tracestate: 'vendor=x' }));
    const spans = byName(exporter.getFinishedSpans());
    expect([...spans.keys()].sort()).to.deep.equal([
      'admit',
      'authenticate',
      'authorize',
      'tollgate.check',
    ]);
    const root = spans.get('tollgate.check')!;
    expect(root.spanContext().traceId).to.equal(TRACE_ID);
    expect(root.parentSpanContext?.spanId).to.equal(PARENT_ID);
    expect(root.parentSpanContext?.isRemote).to.equal(true);
    expect(root.kind).to.equal(SpanKind.SERVER);
    expect(root.attributes).to.include({
      'http.request.method': 'POST',
      'url.path': '/v1/chat/completions',
      'tollgate.decision': 'allow',
      'tollgate.reason': 'allowed',
      'gen_ai.request.model': 'gpt-4o',
    });
    for (const stage of ['authenticate', 'authorize', 'admit']) {
      const span = spans.get(stage)!;
      expect(span.spanContext().traceId, stage).to.equal(TRACE_ID);
      expect(span.parentSpanContext?.spanId, stage).to.equal(root.spanContext().spanId);
      expect(span.attributes['tollgate.outcome'], stage).to.equal('pass');
    }
  });

  it('marks the stage that denied; a deny is not an error status', async () => {
    const { tracing, exporter } = memoryTracing();
    const { gateway: gw } = gateway({ tracing });
    await gw.decide(chat('bob', 'gpt-4o', { traceparent: TRACEPARENT }));
    const spans = byName(exporter.getFinishedSpans());
    expect(spans.has('admit')).to.equal(false);
    expect(spans.get('authorize')!.attributes['tollgate.outcome']).to.equal('deny');
    expect(spans.get('tollgate.check')!.attributes).to.include({
      'tollgate.decision': 'deny',
      'tollgate.reason': 'model_not_allowed',
      'http.response.status_code': 403,
    });
    expect(spans.get('tollgate.check')!.status.code).to.equal(SpanStatusCode.UNSET);
  });

  it('starts a new trace when there is no (or a malformed) traceparent', async () => {
    const { tracing, exporter } = memoryTracing();
    const { gateway: gw } = gateway({ tracing });
    await gw.decide(chat('ann', 'o3-mini', { traceparent: 'garbage' }));
    const root = byName(exporter.getFinishedSpans()).get('tollgate.check')!;
    expect(root.parentSpanContext).to.equal(undefined);
    expect(root.spanContext().traceId).to.match(/^[0-9a-f]{32}$/);
  });

  it('honours an unsampled parent: nothing is recorded', async () => {
    const { tracing, exporter } = memoryTracing();
    const { gateway: gw } = gateway({ tracing });
    await gw.decide(chat('ann', 'o3-mini', { traceparent: `00-${TRACE_ID}-${PARENT_ID}-00` }));
    expect(exporter.getFinishedSpans()).to.have.length(0);
  });

  it('a Tracing without provider is off and starts nothing', () => {
    const off = new Tracing();
    expect(off.enabled).to.equal(false);
    expect(off.startCheck({ traceparent: TRACEPARENT }, {})).to.equal(undefined);
  });
});

describe('telemetry/tracing: parseTraceparent', () => {
  it('accepts W3C level-1 headers and keeps the sampled flag and tracestate', () => {
    const ctx = parseTraceparent(TRACEPARENT, 'a=1,b=2');
    expect(ctx).to.include({ traceId: TRACE_ID, spanId: PARENT_ID, traceFlags: 1, isRemote: true });
    expect(ctx?.traceState?.get('b')).to.equal('2');
    expect(parseTraceparent(`00-${TRACE_ID}-${PARENT_ID}-00`)?.traceFlags).to.equal(0);
    // A future version may append fields.
    expect(parseTraceparent(`01-${TRACE_ID}-${PARENT_ID}-01-extra`)?.traceId).to.equal(TRACE_ID);
  });

  it('refuses malformed, forbidden and all-zero values', () => {
    for (const bad of [
      undefined,
      '',
      'garbage',
      `00-${TRACE_ID}-${PARENT_ID}`,
      `00-${TRACE_ID}-${PARENT_ID}-01-extra`,
      `ff-${TRACE_ID}-${PARENT_ID}-01`,
      `00-${'0'.repeat(32)}-${PARENT_ID}-01`,
      `00-${TRACE_ID}-${'0'.repeat(16)}-01`,
      `00-${TRACE_ID.toUpperCase()}-${PARENT_ID}-01`,
    ]) {
      expect(parseTraceparent(bad), String(bad)).to.equal(undefined);
    }
  });
});

describe('telemetry/tracing: export only when OTEL_* asks', () => {
  it('reads the standard variables', () => {
    expect(wantsOtlpTraces({})).to.equal(false);
    expect(wantsOtlpTraces({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })).to.equal(
      true,
    );
    expect(
      wantsOtlpTraces({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/v1/traces' }),
    ).to.equal(true);
    expect(wantsOtlpTraces({ OTEL_TRACES_EXPORTER: 'otlp' })).to.equal(true);
    expect(
      wantsOtlpTraces({
        OTEL_TRACES_EXPORTER: 'none',
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318',
      }),
    ).to.equal(false);
    expect(wantsOtlpTraces({ OTEL_TRACES_EXPORTER: 'console' })).to.equal(false);
    expect(wantsOtlpTraces({ OTEL_SDK_DISABLED: 'true', OTEL_TRACES_EXPORTER: 'otlp' })).to.equal(
      false,
    );
    expect(wantsOtlpTraces({ OTEL_EXPORTER_OTLP_ENDPOINT: '  ' })).to.equal(false);
  });

  it('builds a provider only when asked', async () => {
    expect((await tracingFromEnv({})).enabled).to.equal(false);
    const on = await tracingFromEnv({ OTEL_TRACES_EXPORTER: 'otlp' });
    expect(on.enabled).to.equal(true);
    await on.shutdown();
  });
});
