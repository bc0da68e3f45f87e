/** The portal's routes without sockets: requests and responses as plain objects, deps with defaults. */
import { Readable } from 'node:stream';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Identity } from '../../../src/domain/identity.js';
import { DEFAULT_DAILY_USAGE, type PortalConfig } from '../../../src/config/schema.js';
import { MemoryUsageBook } from '../../../src/store/usage-book.js';
import type { PortalClient } from '../../../src/portal/oidc.js';
import { portalHandler, type PortalDeps } from '../../../src/portal/server.js';
import { logSink, testConfig } from '../../helpers/unit.js';
import { MemoryStore } from '../../../src/store/memory.js';

export const PORTAL: PortalConfig = {
  listen: '127.0.0.1:0',
  provider: 'corp',
  clientId: 'portal',
  publicUrl: 'https://portal.example.com',
  scope: 'openid',
  token: 'access',
  sessionTtlSeconds: 3600,
  maxSessions: 10,
};

export const ADA: Identity = {
  provider: 'corp',
  issuer: 'https://idp.example.com',
  subject: 'ada',
  user: 'ada@example.com',
  groups: [],
  claims: { sub: 'ada' },
  expiresAt: Math.floor(Date.now() / 1000) + 3600,
};

export interface Answer {
  status: number;
  headers: Record<string, string | string[]>;
  body: string;
}

export function request(method: string, url: string, headers: Record<string, string> = {}, body = ''): IncomingMessage {
  const req = Readable.from(body === '' ? [] : [Buffer.from(body)]) as unknown as IncomingMessage;
  Object.assign(req, { method, url, headers });
  return req;
}

export function response(): { res: ServerResponse; answer: Answer } {
  const answer: Answer = { status: 0, headers: {}, body: '' };
  const res = {
    headersSent: false,
    writeHead(status: number, headers: Record<string, string | string[]>) {
      answer.status = status;
      answer.headers = headers;
      return res;
    },
    end(body?: string) {
      answer.body = body ?? '';
    },
  };
  return { res: res as unknown as ServerResponse, answer };
}

/** A portal handler on `over` (defaults: a client that fails, a memory store and book) and a caller of its routes. */
export function portalWith(over: Partial<PortalDeps> = {}) {
  const sink = logSink();
  const store = new MemoryStore();
  const portal = portalHandler({
    config: PORTAL,
    client: { start: () => Promise.reject(new Error('connect ECONNREFUSED')), finish: () => Promise.reject(new Error('unused')) } as unknown as PortalClient,
    verifier: () => ({ authenticate: () => Promise.reject(new Error('unused')) }),
    me: () => ({ config: testConfig(), allowedModels: () => [], counters: store }),
    usage: () => ({ book: new MemoryUsageBook(), days: DEFAULT_DAILY_USAGE }),
    logger: sink.logger,
    ...over,
  });
  const call = async (req: IncomingMessage): Promise<Answer> => {
    const { res, answer } = response();
    await portal.handle(req, res);
    return answer;
  };
  return { portal, call, store, ...sink };
}
