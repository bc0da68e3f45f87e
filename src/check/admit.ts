/**
 * Step `admit`: every rate limit and token budget that applies, counted in ONE store call
 * (limits/admit.ts). Last of the judging steps, so a request the policy refuses never counts.
 */
import { admit, type Planner } from '../limits/admit.js';
import type { Store } from '../store/store.js';
import type { CheckStep } from './step.js';

export function admitStep(planners: readonly Planner[], store: Store): CheckStep {
  return {
    name: 'admit',
    reported: true,
    async run(check) {
      const verdict = await admit(planners, store, check.planInput());
      if ('deny' in verdict) return verdict.deny;
      const grant = verdict.ok;
      Object.assign(check.responseHeaders, grant.responseHeaders);
      Object.assign(check.metadata, grant.metadata);
      const reservation = grant.reservation;
      if (reservation !== undefined) {
        check.reservation = reservation;
        // Refused or failed later in the Check, the request never reaches ext_proc: free now
        // what it holds rather than leave its slots to the reservation TTL.
        check.undo.push(() => store.release(reservation.budgets, reservation.id, check.now));
      }
      if (grant.promptEstimate !== undefined) check.promptEstimate = grant.promptEstimate;
      if (grant.outputLimit !== undefined) check.outputLimit = grant.outputLimit;
      if (grant.price !== undefined) check.price = grant.price;
      return undefined;
    },
  };
}
