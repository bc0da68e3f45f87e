/**
 * Step `whoami`: `GET /v1/tollgate/whoami` is answered by Tollgate itself, never sent upstream.
 * It runs right after `authenticate`, so the caller is verified exactly as for a model call
 * (same providers, same 401 envelopes), and answers with the caller's own view (me.ts) as
 * JSON with HTTP 200 — for Envoy a "denied" local reply, so no upstream credential is used and
 * nothing reaches the provider. Reading the view counts nothing. With `server.whoami: false`
 * the path is an ordinary request (judged by the rules like any unknown endpoint).
 *
 * Under `/v1`, so the SDK's own base URL reaches it (`client.get('/tollgate/whoami')` with the
 * OpenAI Node SDK) and so does any proxy or ingress that routes only `/v1/` to the gateway.
 */
import type { Denial } from '../domain/decision.js';
import { deny } from '../domain/denials.js';
import { describeCaller, type MeSources } from './me.js';
import type { CheckState, CheckStep } from './step.js';

/** The path of the whoami answer, on the Envoy listener the SDKs use. */
export const WHOAMI_PATH = '/v1/tollgate/whoami';

/** Whether a request asks for the whoami answer (paths match regardless of case, as rules do). */
export function isWhoami(method: string, path: string): boolean {
  return method === 'GET' && path.toLowerCase() === WHOAMI_PATH;
}

/** `sources` undefined: whoami is off (`server.whoami: false`) and the step passes everything. */
export function whoamiStep(sources: MeSources | undefined): CheckStep {
  return {
    name: 'whoami',
    // Not a stage: every other request passes it with one string comparison, synchronously.
    reported: false,
    run(check) {
      if (sources === undefined || !isWhoami(check.request.method, check.request.path)) return undefined;
      return answer(sources, check);
    },
  };
}

async function answer(sources: MeSources, check: CheckState): Promise<Denial> {
  const view = await describeCaller(sources, check.caller, check.now);
  const shaped = deny('whoami', "the caller's own identity, rules, limits and budgets", {
    headers: { 'cache-control': 'no-store' },
  });
  return { ...shaped, body: JSON.stringify(view) };
}
