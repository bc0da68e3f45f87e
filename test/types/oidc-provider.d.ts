// oidc-provider ships no types; the tests use a small part of its API.
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  /** The part of koa's context the login fixture reads and writes. */
  export interface KoaContextLike {
    method: string;
    path: string;
    status: number;
    body: unknown;
  }

  export default class Provider {
    constructor(issuer: string, configuration: Record<string, unknown>);
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
    on(event: 'device_authorization.success', listener: (ctx: unknown, body: Record<string, unknown>) => void): this;
    use(middleware: (ctx: KoaContextLike, next: () => Promise<void>) => Promise<void>): void;
  }
}
