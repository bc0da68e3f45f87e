/**
 * Phase `end`: the hand-off is settled with the ledger exactly once — the provider's usage, an
 * estimate when the response was cut short (client abort, upstream reset), or the prompt alone
 * when the client left before any response (and a background request's whole output limit,
 * which the provider produces anyway); never lost.
 */
import { promptTokens } from '../metering/meter.js';
import type { Usage } from '../metering/usage.js';
import type { Handoff } from '../handoff/handoff.js';
import { countPrompt } from './response-side.js';
import type { ExchangeState } from './state.js';

export async function end(x: ExchangeState, outcome: 'complete' | 'aborted'): Promise<void> {
  const handoff = x.handoff;
  if (!handoff || x.closed) return;
  try {
    if (x.endpoint === 'other') return await x.release('not_metered');
    x.closed = true;
    x.decoder?.destroy();
    // No response yet (the client left first): the prompt was sent, so charge it (counted).
    const usage = x.meter ? x.meter.finish(outcome) : promptOnly(x, handoff);
    const now = (x.deps.now ?? Date.now)();
    await x.deps.ledger.settle(handoff, usage, {
      status: x.status,
      latencyMs: Math.max(0, now - handoff.admittedAt),
      aborted: outcome === 'aborted',
      ...(x.providerRequestId !== undefined ? { providerRequestId: x.providerRequestId } : {}),
    });
  } catch (err) {
    x.report(err);
  }
}

function promptOnly(x: ExchangeState, handoff: Handoff): Usage {
  const input = promptTokens({ promptEstimate: handoff.promptEstimate, countPrompt: () => countPrompt(x) });
  // A background request runs on at the provider whether or not its caller waits.
  const output = handoff.backgroundOutput ?? 0;
  return { inputTokens: input, outputTokens: output, totalTokens: input + output, source: 'estimated' };
}
