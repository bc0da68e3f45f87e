/**
 * The decision pipeline, as a table: authenticate → read body → each stage in order → respond.
 * The first deny stops it. Every decision is written as one audit line.
 */
import type { Config } from '../config/schema.js';
import { AuthenticationError, TollgateError } from '../errors.js';
import type { Logger } from '../telemetry/logger.js';
import { readBody } from './body.js';
import { deny } from './denials.js';
import type { Responder } from './respond.js';
import type { RequestContext, Stage } from './stage.js';
import type { Decision, Denial, GatewayRequest, Identity } from './types.js';

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
  readonly now?: () => number;
}

/** Observer of finished decisions (metrics hook). */
export type DecisionObserver = (decision: Decision, latencyMs: number) => void;

export class Gateway {
  private readonly now: () => number;
  private readonly observers: DecisionObserver[] = [];
  private readonly deps: GatewayDeps;

  constructor(deps: GatewayDeps) {
    this.deps = deps;
    this.now = deps.now ?? Date.now;
  }

  get config(): Config {
    return this.deps.config;
  }

  onDecision(observer: DecisionObserver): void {
    this.observers.push(observer);
  }

  async decide(request: GatewayRequest): Promise<Decision> {
    const started = performance.now();
    let decision: Decision;
    let model: string | undefined;
    try {
      const result = await this.run(request);
      decision = result.decision;
      model = result.model;
    } catch (err) {
      // Fail closed: an unexpected error is a 500 deny, never an allow.
      this.deps.logger.error({ err, requestId: request.id }, 'decision failed');
      decision = { deny: deny('internal_error', 'Tollgate could not decide on this request.') };
    }
    const latencyMs = performance.now() - started;
    this.audit(request, decision, model, latencyMs);
    for (const observer of this.observers) observer(decision, latencyMs);
    return decision;
  }

  private async run(request: GatewayRequest): Promise<{ decision: Decision; model?: string }> {
    let identity: Identity;
    try {
      identity = await this.deps.verifier.authenticate(request.headers['authorization']);
    } catch (err) {
      if (err instanceof AuthenticationError) return { decision: { deny: deny(err.code, err.message) } };
      throw err;
    }
    const body = readBody(request);
    if (!body.ok) return { decision: { deny: body.denial, identity } };
    const ctx: RequestContext = {
      request,
      identity,
      ...(body.model !== undefined ? { model: body.model } : {}),
      ...(body.json !== undefined ? { body: body.json } : {}),
      now: this.now(),
      config: this.deps.config,
    };
    const responseHeaders: Record<string, string> = {};
    const metadata: Record<string, unknown> = {};
    const setExtra: Record<string, string> = {};
    for (const stage of this.deps.stages) {
      let result;
      try {
        result = await stage.run(ctx);
      } catch (err) {
        if (err instanceof TollgateError) return { decision: { deny: deny(err.code, err.message), identity }, ...modelOf(ctx) };
        throw err;
      }
      if ('deny' in result) return { decision: { deny: result.deny, identity }, ...modelOf(ctx) };
      Object.assign(responseHeaders, result.ok.responseHeaders);
      Object.assign(metadata, result.ok.metadata);
      Object.assign(setExtra, result.ok.setHeaders);
    }
    const upstream = this.deps.responder.upstreamHeaders(identity);
    return {
      decision: {
        allow: {
          identity,
          setHeaders: { ...setExtra, ...upstream.set },
          removeHeaders: upstream.remove,
          responseHeaders,
          metadata: {
            ...metadata,
            requestId: request.id,
            subject: identity.subject,
            user: identity.user,
            provider: identity.provider,
            groups: identity.groups.join(','),
            ...(identity.tenant !== undefined ? { tenant: identity.tenant } : {}),
            ...(ctx.model !== undefined ? { model: ctx.model } : {}),
          },
        },
      },
      ...modelOf(ctx),
    };
  }

  private audit(request: GatewayRequest, decision: Decision, model: string | undefined, latencyMs: number): void {
    const identity = decision.allow ? decision.allow.identity : decision.identity;
    const denial: Denial | undefined = decision.deny;
    this.deps.logger.info(
      {
        audit: 'decision',
        requestId: request.id,
        subject: identity?.subject,
        user: identity?.user,
        tenant: identity?.tenant,
        groups: identity?.groups,
        method: request.method,
        path: request.path,
        model,
        decision: denial ? 'deny' : 'allow',
        status: denial?.status ?? 200,
        reason: denial?.reason ?? 'allowed',
        rule: denial?.rule,
        latencyMs: Math.round(latencyMs * 1000) / 1000,
      },
      denial ? `deny ${denial.reason}` : 'allow',
    );
  }
}

function modelOf(ctx: RequestContext): { model?: string } {
  return ctx.model !== undefined ? { model: ctx.model } : {};
}
