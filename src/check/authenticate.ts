/** Step `authenticate`: the caller comes only from a verified token (DESIGN 1.1). */
import { deny } from '../domain/denials.js';
import { AuthenticationError } from '../domain/errors.js';
import type { Identity } from '../domain/identity.js';
import { extractBearer } from '../identity/token.js';
import type { CheckStep } from './step.js';

/** What the Check needs from identity: a verified caller or an AuthenticationError. */
export interface IdentityVerifier {
  authenticate(authorization: string | undefined): Promise<Identity>;
}

export function authenticate(verifier: IdentityVerifier): CheckStep {
  return {
    name: 'authenticate',
    reported: true,
    async run(check) {
      const authorization = check.request.headers['authorization'];
      try {
        check.identity = await verifier.authenticate(authorization);
      } catch (err) {
        if (err instanceof AuthenticationError) return deny(err.code, err.message);
        throw err;
      }
      // Verified just now, so the header holds a well-formed bearer token.
      check.token = extractBearer(authorization);
      return undefined;
    },
  };
}
