/** Assertion helpers shared by the identity unit tests. */
import { expect } from 'chai';
import { AuthenticationError, type ReasonCode } from '../../../src/domain/errors.js';

/** Await `promise`, expect an AuthenticationError with `code`, and return it. */
export async function rejectsWith(
  promise: Promise<unknown>,
  code: ReasonCode,
): Promise<AuthenticationError> {
  try {
    await promise;
  } catch (err) {
    expect(err).to.be.instanceOf(AuthenticationError);
    const authErr = err as AuthenticationError;
    expect(authErr.code, authErr.message).to.equal(code);
    return authErr;
  }
  expect.fail(`expected a rejection with ${code}, but it resolved`);
}

/** A settable clock in epoch milliseconds. */
export function fakeClock(start = Date.now()): {
  now: () => number;
  advance: (seconds: number) => void;
} {
  let t = start;
  return { now: () => t, advance: (seconds) => (t += seconds * 1000) };
}
