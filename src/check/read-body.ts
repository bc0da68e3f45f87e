/**
 * Step `read-body`: the endpoint the request addresses (request/endpoint.ts) and its body,
 * read as the upstream will read it (request/body.ts); a token that rides in the path or the
 * body is refused, since nothing can cut it out on the way (request/credentials.ts).
 */
import { readBody } from '../request/body.js';
import { tokenInRequest } from '../request/credentials.js';
import { classify } from '../request/endpoint.js';
import type { CheckStep } from './step.js';

export const readRequestBody: CheckStep = {
  name: 'read-body',
  reported: false,
  run(check) {
    const { request } = check;
    if (check.token !== undefined) {
      const leak = tokenInRequest(request, check.token);
      if (leak !== undefined) return leak;
    }
    check.endpoint = classify(request.method, request.path);
    const body = readBody(request, check.endpoint);
    if (!body.ok) return body.denial;
    if (body.model !== undefined) check.model = body.model;
    if (body.json !== undefined) check.body = body.json;
    return undefined;
  },
};
