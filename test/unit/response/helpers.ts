/** Shared pieces of the exchange unit tests: an admission, a recording ledger, a driver. */
import type { BodyAction, ResponsePhases, HeaderAction } from '../../../src/response/phases.js';
import { Handoffs, type Handoff } from '../../../src/handoff/handoff.js';
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

export function admission(over: Partial<Handoff> & { body?: unknown } = {}): Handoff {
  const body = over.body;
  return {
    id: 'adm-1',
    requestId: 'req-1',
    identity: IDENTITY,
    method: 'POST',
    path: '/v1/chat/completions',
    model: 'gpt-4o-mini',
    ...(body !== undefined ? { body } : {}),
    promptEstimate: 20,
    admittedAt: ADMITTED_AT,
    ...over,
  };
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

/** Handoffs holding `a`, as the Gateway leaves it for ext_proc. */
export function admissionsWith(a: Handoff): Handoffs {
  const admissions = new Handoffs();
  admissions.put(a);
  return admissions;
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
