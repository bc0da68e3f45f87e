/**
 * The Check (ext_authz), as a table: each request passes the steps of `checkSteps` in order,
 * and the first refusal ends it. Each step is a small file of this folder with one contract
 * (step.ts); CheckFlow only runs the table, times the steps that can take time, writes the
 * decision's audit line and tells the observers (metrics). It fails closed: an unexpected
 * error is a 500 denial, never an allow.
 */
import { randomUUID } from 'node:crypto';
import type { Config } from '../config/schema.js';
import { decisionKind, type Allowance, type Decision, type Denial } from '../domain/decision.js';
import { deny } from '../domain/denials.js';
import { TollgateError } from '../domain/errors.js';
import type { InboundRequest } from '../domain/request.js';
import type { Reservation } from '../domain/reservation.js';
import type { Planner } from '../limits/admit.js';
import type { Store } from '../store/store.js';
import { auditLogger, type Logger } from '../telemetry/logger.js';
import type { CheckTrace, StageOutcome, Tracing } from '../telemetry/tracing.js';
import { admitStep } from './admit.js';
import { decisionLine, shouldWrite } from './audit.js';
import { authenticate, type IdentityVerifier } from './authenticate.js';
import type { AuthorizeStep } from './authorize.js';
import { handOff } from './hand-off.js';
import type { MeSources } from './me.js';
import { canonicalPath } from './path.js';
import { readRequestBody } from './read-body.js';
import { respondStep, type Responder } from './respond.js';
import { CheckState, type CheckStep } from './step.js';
import { whoamiStep } from './whoami.js';

/** What the steps of one configuration are made of (app.ts builds them per reload). */
export interface CheckParts {
  readonly verifier: IdentityVerifier;
  readonly authorize: AuthorizeStep;
  /** Rate limits, then token budgets: on a store failure the first with work words the 503. */
  readonly planners: readonly Planner[];
  readonly store: Store;
  readonly responder: Responder;
  /** Told of each reservation handed to ext_proc (settled or released once, later). */
  readonly onReservation?: (reservation: Reservation) => void;
  /** What `GET /v1/tollgate/whoami` is answered from; absent when `server.whoami: false`. */
  readonly me?: MeSources;
}

/** The Check, in order. app.ts and the tests build it through this one function. */
export function checkSteps(parts: CheckParts): readonly CheckStep[] {
  return [
    canonicalPath, // the one plain path, or 400 invalid_path
    authenticate(parts.verifier), // a verified token, or 401
    whoamiStep(parts.me), // GET /v1/tollgate/whoami: answered here (200), never sent upstream
    readRequestBody, // the endpoint, and the body as the upstream reads it, or 400
    parts.authorize, // the rules, first match wins, or 403
    admitStep(parts.planners, parts.store), // rate limits and budgets in one store call, or 429 / 503
    respondStep(parts.responder), // identity headers, the upstream key, no caller credential
    handOff(parts.authorize, parts.onReservation), // what ext_proc needs, into the metadata
  ];
}

export interface CheckDeps {
  readonly config: Config;
  readonly steps: readonly CheckStep[];
  readonly logger: Logger;
  readonly now?: () => number;
  /** Spans per Check and per reported step, continuing the request's `traceparent`. */
  readonly tracing?: Tracing;
  /** Randomness for `logging.sampleAllowed` (tests inject a fixed sequence). */
  readonly random?: () => number;
}

/** Observer of finished decisions (metrics hook). */
export type DecisionObserver = (decision: Decision, latencyMs: number) => void;
/** Observer of each reported step's duration (`authenticate`, `authorize`, `admit`). */
export type StageObserver = (stage: string, latencyMs: number, outcome: StageOutcome) => void;

/** Per-Check instrumentation: the trace (when on) and each reported step's milliseconds. */
interface Probe {
  readonly trace: CheckTrace | undefined;
  readonly stages: Record<string, number>;
}

export class CheckFlow {
  private readonly now: () => number;
  private readonly observers: DecisionObserver[] = [];
  private readonly stageObservers: StageObserver[] = [];
  private readonly deps: CheckDeps;
  /** Writes the decision lines: of their fields only `claimsUsed` has keys from outside. */
  private readonly auditLog: Logger;

  constructor(deps: CheckDeps) {
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
    const check = new CheckState(request, this.now(), randomUUID());
    let decision: Decision;
    try {
      decision = await this.run(check, probe);
    } catch (err) {
      this.deps.logger.error({ err, requestId: request.id }, 'decision failed');
      decision = { deny: deny('internal_error', 'Tollgate could not decide on this request.') };
    }
    if (decision.deny !== undefined) await this.undo(check);
    const latencyMs = performance.now() - started;
    probe.trace?.end(
      {
        'tollgate.decision': decisionKind(decision),
        'tollgate.reason': decision.deny?.reason ?? 'allowed',
        ...(decision.deny ? { 'http.response.status_code': decision.deny.status } : {}),
        ...(check.model !== undefined ? { 'gen_ai.request.model': check.model } : {}),
      },
      decisionKind(decision) === 'deny',
    );
    this.audit(request, decision, check.model, latencyMs, probe);
    for (const observer of this.observers) observer(decision, latencyMs);
    return withRequestId(decision, request.id);
  }

  private async run(check: CheckState, probe: Probe): Promise<Decision> {
    for (const step of this.deps.steps) {
      let denial: Denial | undefined;
      try {
        denial = step.reported ? await this.reported(step, check, probe) : await step.run(check);
      } catch (err) {
        if (!(err instanceof TollgateError)) throw err;
        denial = deny(err.code, err.message);
      }
      if (denial !== undefined) {
        return check.identity !== undefined ? { deny: denial, identity: check.identity } : { deny: denial };
      }
    }
    return { allow: allowance(check) };
  }

  /** Gives back what steps took for a Check that ends refused (release failures expire on their own). */
  private async undo(check: CheckState): Promise<void> {
    for (const step of check.undo.splice(0)) {
      try {
        await step();
      } catch (err) {
        this.deps.logger.warn({ err, requestId: check.request.id }, 'could not release a refused request\'s reservation; it expires on its own');
      }
    }
  }

  /**
   * Runs one step under a span and a stopwatch. The outcome is `deny` for a refusal (returned,
   * or thrown as a TollgateError), `error` for anything else thrown.
   */
  private async reported(step: CheckStep, check: CheckState, probe: Probe): Promise<Denial | undefined> {
    const span = probe.trace?.stage(step.name);
    const t0 = performance.now();
    let outcome: StageOutcome = 'error';
    let failure: unknown;
    try {
      const denial = await step.run(check);
      outcome = denial === undefined ? 'pass' : 'deny';
      return denial;
    } catch (err) {
      failure = err;
      outcome = err instanceof TollgateError ? 'deny' : 'error';
      throw err;
    } finally {
      const ms = performance.now() - t0;
      probe.stages[step.name] = ms;
      span?.end(outcome, failure);
      for (const observer of this.stageObservers) observer(step.name, ms, outcome);
    }
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
    this.auditLog.info(line, decision.deny ? `${decisionKind(decision)} ${decision.deny.reason}` : 'allow');
  }
}

/**
 * An allowed Check as the edge renders it. The dynamic metadata Envoy keeps (access logs) and
 * forwards to ext_proc: the deciding rule, what the steps published, and the hand-off.
 */
function allowance(check: CheckState): Allowance {
  const { authz, shadowDenied } = check;
  return {
    identity: check.caller,
    setHeaders: check.setHeaders,
    removeHeaders: check.removeHeaders,
    removeQueryParams: check.removeQueryParams,
    responseHeaders: check.responseHeaders,
    metadata: {
      ...(authz !== undefined ? { authz } : {}),
      ...(shadowDenied !== undefined ? { shadowDenied } : {}),
      ...check.metadata,
    },
    ...(authz !== undefined ? { authz } : {}),
    ...(shadowDenied !== undefined ? { shadowDenied } : {}),
  };
}

/** The response header that names Tollgate's (Envoy's) request id next to the provider's. */
export const TOLLGATE_REQUEST_ID = 'x-tollgate-request-id';

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
