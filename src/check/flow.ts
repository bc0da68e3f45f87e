/**
 * The decision pipeline, as a table: authenticate → read body → each stage in order → respond.
 * The first deny stops it. Every decision is written as one audit line.
 */
import { randomUUID } from 'node:crypto';
import type { Config } from '../config/schema.js';
import type { Handoffs } from '../handoff/handoff.js';
import type { Reservation } from '../domain/reservation.js';
import { AuthenticationError, TollgateError } from '../domain/errors.js';
import { auditLogger, type Logger } from '../telemetry/logger.js';
import type { CheckTrace, StageOutcome, Tracing } from '../telemetry/tracing.js';
import { decisionLine, shouldWrite } from './audit.js';
import { classify } from '../request/endpoint.js';
import { encodeClaimList } from '../identity/claims.js';
import { extractBearer } from '../identity/token.js';
import { readBody } from '../request/body.js';
import { pathProblem } from '../request/canonical.js';
import { CREDENTIAL_HEADERS, credentialRemovals, tokenInRequest } from '../request/credentials.js';
import { intern } from '../handoff/intern.js';
import { deny } from '../domain/denials.js';
import type { Responder } from './respond.js';
import type { RequestContext, Stage } from './step.js';
import type { Decision } from '../domain/decision.js';
import type { InboundRequest } from '../domain/request.js';
import type { Identity } from '../domain/identity.js';

export { shadowDenialOf, type ShadowDenial } from './audit.js';

/** What the pipeline needs from identity: a verified caller or an AuthenticationError. */
export interface IdentityVerifier {
  authenticate(authorization: string | undefined): Promise<Identity>;
}

export interface GatewayDeps {
  readonly config: Config;
  readonly verifier: IdentityVerifier;
  readonly stages: readonly Stage[];
  readonly responder: Responder;
  readonly logger: Logger;
  /**
   * Where an allowed request's admission (identity, body, budget reservation) waits for the
   * same request's ext_proc stream. Made once by the App and shared across reloads.
   */
  readonly handoffs: Handoffs;
  readonly now?: () => number;
  /** Spans per Check and per stage, continuing the request's `traceparent`; absent = none. */
  readonly tracing?: Tracing;
  /** Randomness for `logging.sampleAllowed` (tests inject a fixed sequence). */
  readonly random?: () => number;
}

/** Observer of finished decisions (metrics hook). */
export type DecisionObserver = (decision: Decision, latencyMs: number) => void;
/** Observer of each stage's duration: `authenticate`, then every Stage by its name. */
export type StageObserver = (stage: string, latencyMs: number, outcome: StageOutcome) => void;
/** Observer of budget reservations handed to ext_proc (each is settled or released once). */
export type ReservationObserver = (reservation: Reservation) => void;

/** Per-Check instrumentation state: the trace (when on) and each stage's milliseconds. */
interface Probe {
  readonly trace: CheckTrace | undefined;
  readonly stages: Record<string, number>;
}

export class Gateway {
  private readonly now: () => number;
  private readonly observers: DecisionObserver[] = [];
  private readonly stageObservers: StageObserver[] = [];
  private readonly reservationObservers: ReservationObserver[] = [];
  private readonly deps: GatewayDeps;
  /** Writes the decision lines: of their fields only `claimsUsed` has keys from outside. */
  private readonly auditLog: Logger;

  constructor(deps: GatewayDeps) {
    this.deps = deps;
    this.now = deps.now ?? Date.now;
    this.auditLog = auditLogger(deps.logger, ['claimsUsed']);
  }

  get config(): Config {
    return this.deps.config;
  }

  onDecision(observer: DecisionObserver): void {
    this.observers.push(observer);
  }

  onStage(observer: StageObserver): void {
    this.stageObservers.push(observer);
  }

  onReservation(observer: ReservationObserver): void {
    this.reservationObservers.push(observer);
  }

  async decide(request: InboundRequest): Promise<Decision> {
    const started = performance.now();
    const probe: Probe = {
      trace: this.deps.tracing?.startCheck(request.headers, {
        'http.request.method': request.method,
        'url.path': request.path,
        'tollgate.request_id': request.id,
      }),
      stages: {},
    };
    let decision: Decision;
    let model: string | undefined;
    try {
      const result = await this.run(request, probe);
      decision = result.decision;
      model = result.model;
    } catch (err) {
      // Fail closed: an unexpected error is a 500 deny, never an allow.
      this.deps.logger.error({ err, requestId: request.id }, 'decision failed');
      decision = { deny: deny('internal_error', 'Tollgate could not decide on this request.') };
    }
    const latencyMs = performance.now() - started;
    probe.trace?.end(
      {
        'tollgate.decision': decision.deny ? 'deny' : 'allow',
        'tollgate.reason': decision.deny?.reason ?? 'allowed',
        ...(decision.deny ? { 'http.response.status_code': decision.deny.status } : {}),
        ...(model !== undefined ? { 'gen_ai.request.model': model } : {}),
      },
      decision.deny !== undefined,
    );
    this.audit(request, decision, model, latencyMs, probe);
    for (const observer of this.observers) observer(decision, latencyMs);
    return withRequestId(decision, request.id);
  }

  /**
   * Runs one stage under a span and a stopwatch. The outcome is `deny` for a refusal (returned,
   * or thrown as a TollgateError), `error` for anything else thrown.
   */
  private async timed<T>(name: string, probe: Probe, outcomeOf: (r: T) => StageOutcome, fn: () => Promise<T>): Promise<T> {
    const span = probe.trace?.stage(name);
    const t0 = performance.now();
    let outcome: StageOutcome = 'error';
    let failure: unknown;
    try {
      const result = await fn();
      outcome = outcomeOf(result);
      return result;
    } catch (err) {
      failure = err;
      outcome = err instanceof TollgateError ? 'deny' : 'error';
      throw err;
    } finally {
      const ms = performance.now() - t0;
      probe.stages[name] = ms;
      span?.end(outcome, failure);
      for (const observer of this.stageObservers) observer(name, ms, outcome);
    }
  }

  private async run(request: InboundRequest, probe: Probe): Promise<{ decision: Decision; model?: string }> {
    // One canonical request (DESIGN 1.8): a path in any other form is refused, never judged.
    const badPath = pathProblem(request.path);
    if (badPath !== undefined) return { decision: { deny: deny('invalid_path', `${badPath}; send the plain path`) } };
    let identity: Identity;
    try {
      identity = await this.timed('authenticate', probe, () => 'pass', () =>
        this.deps.verifier.authenticate(request.headers['authorization']),
      );
    } catch (err) {
      if (err instanceof AuthenticationError) return { decision: { deny: deny(err.code, err.message) } };
      throw err;
    }
    // Verified above, so the header holds a well-formed bearer token.
    const token = extractBearer(request.headers['authorization']);
    const leak = tokenInRequest(request, token);
    if (leak !== undefined) return { decision: { deny: leak, identity } };
    const endpoint = classify(request.method, request.path);
    const body = readBody(request, endpoint);
    if (!body.ok) return { decision: { deny: body.denial, identity } };
    const ctx: RequestContext = {
      request,
      identity,
      endpoint,
      ...(body.model !== undefined ? { model: body.model } : {}),
      ...(body.json !== undefined ? { body: body.json } : {}),
      now: this.now(),
      config: this.deps.config,
      handoffId: randomUUID(),
    };
    const responseHeaders: Record<string, string> = {};
    let reservation: Reservation | undefined;
    let promptEstimate = 0;
    let outputLimit: number | undefined;
    const metadata: Record<string, unknown> = {};
    const setExtra: Record<string, string> = {};
    for (const stage of this.deps.stages) {
      let result;
      try {
        result = await this.timed(stage.name, probe, (r) => ('deny' in r ? 'deny' : 'pass'), () => stage.run(ctx));
      } catch (err) {
        if (err instanceof TollgateError) return { decision: { deny: deny(err.code, err.message), identity }, ...modelOf(ctx) };
        throw err;
      }
      if ('deny' in result) return { decision: { deny: result.deny, identity }, ...modelOf(ctx) };
      Object.assign(responseHeaders, result.ok.responseHeaders);
      Object.assign(metadata, result.ok.metadata);
      Object.assign(setExtra, result.ok.setHeaders);
      reservation = result.ok.reservation ?? reservation;
      promptEstimate = result.ok.promptEstimate ?? promptEstimate;
      outputLimit = result.ok.outputLimit ?? outputLimit;
    }
    const upstream = this.deps.responder.upstreamHeaders(identity);
    const removals = credentialRemovals(request, token);
    const handoffId = ctx.handoffId ?? randomUUID();
    // Last, once nothing can refuse any more: an admission put here is settled or released
    // by ext_proc, or released when it expires unused.
    this.deps.handoffs.put({
      id: handoffId,
      requestId: request.id,
      identity,
      method: intern(request.method),
      path: intern(request.path),
      ...(ctx.model !== undefined ? { model: intern(ctx.model) } : {}),
      ...(ctx.body !== undefined ? { body: ctx.body } : {}),
      promptEstimate,
      ...(reservation !== undefined ? { reservation } : {}),
      ...(outputLimit !== undefined ? { outputLimit } : {}),
      admittedAt: ctx.now,
    });
    if (reservation !== undefined) for (const observer of this.reservationObservers) observer(reservation);
    return {
      decision: {
        allow: {
          identity,
          setHeaders: { ...setExtra, ...upstream.set },
          removeHeaders: [...upstream.remove, ...CREDENTIAL_HEADERS, ...removals.headers],
          removeQueryParams: removals.params,
          responseHeaders,
          metadata: {
            ...metadata,
            requestId: request.id,
            subject: identity.subject,
            user: identity.user,
            provider: identity.provider,
            // The identity headers' encoding: a `,` inside a group name cannot split it.
            groups: encodeClaimList(identity.groups),
            ...(identity.tenant !== undefined ? { tenant: identity.tenant } : {}),
            ...(ctx.model !== undefined ? { model: ctx.model } : {}),
            admission: handoffId,
          },
        },
      },
      ...modelOf(ctx),
    };
  }

  private audit(request: InboundRequest, decision: Decision, model: string | undefined, latencyMs: number, probe: Probe): void {
    const sample = this.deps.config.logging.sampleAllowed ?? 1;
    if (!shouldWrite(decision, sample, this.deps.random ?? Math.random)) return;
    const line = decisionLine(request, decision, {
      model,
      latencyMs,
      stages: probe.stages,
      ...(probe.trace !== undefined ? { traceId: probe.trace.traceId } : {}),
    });
    this.auditLog.info(line, decision.deny ? `deny ${decision.deny.reason}` : 'allow');
  }
}

/**
 * Every response carries the id of the audit line (DESIGN 1.10): a denial, which Tollgate
 * writes, as `x-request-id` (what the SDKs report as the request id); an allowed response,
 * whose `x-request-id` is the provider's own, as `x-tollgate-request-id`.
 */
function withRequestId(decision: Decision, id: string): Decision {
  if (decision.allow !== undefined) {
    const allow = decision.allow;
    return { allow: { ...allow, responseHeaders: { ...allow.responseHeaders, [TOLLGATE_REQUEST_ID]: id } } };
  }
  const denial = decision.deny;
  return {
    ...decision,
    deny: { ...denial, headers: { ...denial.headers, 'x-request-id': id, [TOLLGATE_REQUEST_ID]: id } },
  };
}

/** The response header that names Tollgate's (Envoy's) request id next to the provider's. */
export const TOLLGATE_REQUEST_ID = 'x-tollgate-request-id';

function modelOf(ctx: RequestContext): { model?: string } {
  return ctx.model !== undefined ? { model: ctx.model } : {};
}
