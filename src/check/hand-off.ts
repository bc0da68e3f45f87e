/**
 * Step `hand-off`, the last row: what the response side needs from this Check (caller, model,
 * reservation, output limit, whether to inject `include_usage`) is written into the ext_authz
 * dynamic metadata that Envoy forwards to ext_proc (handoff/handoff.ts), once nothing can
 * refuse the request any more. Nothing is kept in this process.
 */
import type { Identity } from '../domain/identity.js';
import type { Reservation } from '../domain/reservation.js';
import { encodeHandoff, MAX_GROUPS_BYTES } from '../handoff/handoff.js';
import { encodeClaimList } from '../identity/claims.js';
import { injectsUsage } from '../metering/request-rewrite.js';
import { backgroundOutput } from '../metering/estimate.js';
import { isModelList } from '../request/endpoint.js';
import { STREAM_PROFILE_KEY, streamProfile } from '../handoff/stream-profile.js';
import type { CheckStep } from './step.js';

/** What reads the claims the authorization rules use (check/authorize.ts). */
export interface RuleClaims {
  ruleClaims(identity: Identity): Record<string, unknown>;
}

/**
 * `rules` names the claims a model-list request hands over; `onReservation` is told of each
 * reservation handed to ext_proc (settled or released once, later).
 */
export function handOff(rules: RuleClaims, onReservation?: (reservation: Reservation) => void): CheckStep {
  return {
    name: 'hand-off',
    reported: false,
    run(check) {
      const { request, model, reservation, outputLimit, price } = check;
      const caller = check.caller;
      // Only a model list is filtered by rules on the response side; nothing else needs claims.
      const claims = isModelList(request.method, request.path) ? rules.ruleClaims(caller) : {};
      const injectUsage = injectsUsage(request.path, check.body);
      const background = backgroundOutput(request.path, check.body, outputLimit);
      const metadata = encodeHandoff(
        {
          id: check.handoffId,
          requestId: request.id,
          identity: { ...caller, claims },
          method: request.method,
          path: request.path,
          ...(model !== undefined ? { model } : {}),
          promptEstimate: check.promptEstimate,
          ...(reservation !== undefined ? { reservation } : {}),
          ...(price !== undefined ? { price } : {}),
          ...(outputLimit !== undefined ? { outputLimit } : {}),
          injectUsage,
          ...(background !== undefined ? { backgroundOutput: background } : {}),
          admittedAt: check.now,
        },
        // The identity headers' encoding: a `,` inside a group name cannot split it.
        encodeClaimList(caller.groups, MAX_GROUPS_BYTES),
      );
      Object.assign(check.metadata, metadata);
      // Picks the ext_proc filter that meters a stream (Envoy matches on it).
      const profile = streamProfile(request.path, check.body, injectUsage, outputLimit);
      if (profile !== undefined) check.metadata[STREAM_PROFILE_KEY] = profile;
      if (reservation !== undefined) onReservation?.(reservation);
      return undefined;
    },
  };
}
