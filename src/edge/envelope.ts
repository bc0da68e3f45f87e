/** A Denial rendered as the OpenAI error envelope, the body every refusal carries. */
import type { Denial } from '../domain/decision.js';

/** The OpenAI error envelope body for a denial. */
export function envelope(denial: Denial): string {
  return JSON.stringify({
    error: { message: denial.message, type: denial.type, param: null, code: denial.code },
  });
}
