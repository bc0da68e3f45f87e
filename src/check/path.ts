/** Step `path`: one canonical request (DESIGN 1.8) — a path in any other form is refused, never judged. */
import { deny } from '../domain/denials.js';
import { pathProblem } from '../request/canonical.js';
import type { CheckStep } from './step.js';

export const canonicalPath: CheckStep = {
  name: 'path',
  reported: false,
  run(check) {
    const problem = pathProblem(check.request.path);
    return problem === undefined ? undefined : deny('invalid_path', `${problem}; send the plain path`);
  },
};
