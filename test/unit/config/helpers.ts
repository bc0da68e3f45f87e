/** Shared helpers of the config unit tests. */
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../../../src/config/load.js';
import { ConfigError } from '../../../src/config/problems.js';
import type { ConfigProblem } from '../../../src/config/problems.js';

export const FIXTURES = fileURLToPath(new URL('../../fixtures/configs/', import.meta.url));

/** The smallest valid file: one provider. Tests append sections to it. */
export const MINIMAL = `authentication:
  - provider: { name: corp, issuer: "https://auth.example.com", clientId: envoy }
`;

/** The problems parseConfig reports for `text`; fails the test when the text is accepted. */
export function problemsOf(text: string): ConfigProblem[] {
  try {
    parseConfig(text, 'test.yaml');
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
  throw new Error(`expected a ConfigError for:\n${text}`);
}

/** `line: path: message` strings, convenient for exact assertions. */
export function describeProblems(text: string): string[] {
  return problemsOf(text).map((p) => `${p.line ?? '-'}: ${p.path}: ${p.message}`);
}
