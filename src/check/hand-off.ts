/**
 * Step `hand-off`, the last row: what ext_proc needs from this Check (identity, model, body,
 * reservation, output limit) is handed to the same request's ext_proc stream (handoff/), once
 * nothing can refuse the request any more. It is settled or released by ext_proc, or released
 * when it expires unused.
 */
import type { Reservation } from '../domain/reservation.js';
import type { Handoffs } from '../handoff/handoff.js';
import { intern } from '../handoff/intern.js';
import type { CheckStep } from './step.js';

export function handOff(handoffs: Handoffs, onReservation?: (reservation: Reservation) => void): CheckStep {
  return {
    name: 'hand-off',
    reported: false,
    run(check) {
      const { request, model, body, reservation, outputLimit } = check;
      handoffs.put({
        id: check.handoffId,
        requestId: request.id,
        identity: check.caller,
        method: intern(request.method),
        path: intern(request.path),
        ...(model !== undefined ? { model: intern(model) } : {}),
        ...(body !== undefined ? { body } : {}),
        promptEstimate: check.promptEstimate,
        ...(reservation !== undefined ? { reservation } : {}),
        ...(outputLimit !== undefined ? { outputLimit } : {}),
        admittedAt: check.now,
      });
      if (reservation !== undefined) onReservation?.(reservation);
      return undefined;
    },
  };
}
