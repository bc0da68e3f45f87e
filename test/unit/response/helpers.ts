/** Shared pieces of the exchange unit tests: an admission, a recording ledger, a driver. */
import type { BodyAction, ResponsePhases, HeaderAction } from '../../../src/response/phases.js';
import { encodeHandoff, type Handoff } from '../../../src/handoff/handoff.js';
import { encodeClaimList } from '../../../src/identity/claims.js';
import { injectsUsage } from '../../../src/metering/request-rewrite.js';
import type { ReleaseReason, SettleOutcome } from '../../../src/budgets/ledger.js';
import type { UsageLedger } from '../../../src/response/state.js';
import type { Usage } from '../../../src/metering/usage.js';
import type { Identity } from '../../../src/domain/identity.js';

export const IDENTITY: Identity = {
  provider: 'main-idp',
  issuer: 'https://idp.example',
  subject: 'u-1',
  user: 'alice@myorg.com',
  groups: ['ml-team'],
  tenant: 'marketing',
  claims: { sub: 'u-1', email: 'alice@myorg.com', groups: ['ml-team'] },
  expiresAt: 4_000_000_000,
};

export const ADMITTED_AT = 1_000_000;

/**
 * A hand-off as the Check makes it. `body` is the request body the Check read: it decides
 * `injectUsage`, as the hand-off step does, and does not travel itself.
 */
export function admission(over: Partial<Handoff> & { body?: unknown } = {}): Handoff {
  const { body, ...rest } = over;
  const path = rest.path ?? '/v1/chat/completions';
  return {
    id: 'adm-1',
    requestId: 'req-1',
    identity: IDENTITY,
    method: 'POST',
    path,
    model: 'gpt-4o-mini',
    promptEstimate: 20,
    injectUsage: injectsUsage(path, body),
    admittedAt: ADMITTED_AT,
    ...rest,
  };
}

/** The ext_authz metadata that carries `handoff`, as Envoy forwards it to ext_proc. */
export function metadataOf(handoff: Handoff): Record<string, unknown> {
  // Through JSON, as Envoy's Struct would carry it.
  return JSON.parse(JSON.stringify(encodeHandoff(handoff, encodeClaimList(handoff.identity.groups)))) as Record<string, unknown>;
}

export type LedgerCall =
  | { kind: 'settle'; admission: Handoff; usage: Usage; info: SettleOutcome }
  | { kind: 'release'; admission: Handoff; reason: ReleaseReason };

export class RecordingLedger implements UsageLedger {
  readonly calls: LedgerCall[] = [];
  settle(admission: Handoff, usage: Usage, info: SettleOutcome): void {
    this.calls.push({ kind: 'settle', admission, usage, info });
  }
  release(admission: Handoff, reason: ReleaseReason): void {
    this.calls.push({ kind: 'release', admission, reason });
  }
}


/** What the client receives: each chunk as forwarded (unchanged, replaced or held back). */
export async function feedResponse(
  ex: ResponsePhases,
  chunks: readonly Buffer[],
): Promise<{ forwarded: Buffer; actions: (BodyAction | void)[] }> {
  const out: Buffer[] = [];
  const actions: (BodyAction | void)[] = [];
  for (const [i, chunk] of chunks.entries()) {
    const action = await ex.responseBody!(chunk, i === chunks.length - 1);
    actions.push(action);
    out.push(action?.body ?? chunk);
  }
  return { forwarded: Buffer.concat(out), actions };
}

export async function headers(
  ex: ResponsePhases,
  status: number,
  extra: Record<string, string> = {},
  endOfStream = false,
): Promise<HeaderAction | void> {
  return ex.responseHeaders!({ ':status': String(status), ...extra }, endOfStream);
}

export const SSE = { 'content-type': 'text/event-stream; charset=utf-8' };
export const JSON_TYPE = { 'content-type': 'application/json' };
