/**
 * The HTTP request as the Check sees it, in plain TypeScript: the edge turns Envoy's
 * CheckRequest into this, and nothing past the edge sees Envoy's shape.
 */

/** An HTTP request as ext_authz hands it over, before anything is judged. */
export interface InboundRequest {
  /** Envoy's x-request-id (or a generated id). */
  readonly id: string;
  readonly method: string;
  /** Path without the query string, as Envoy sent it (canonical only once checked). */
  readonly path: string;
  /** The query string without its `?`, when the request target has one. */
  readonly query?: string;
  /** Lower-case header names; repeated headers comma-joined by Envoy. */
  readonly headers: Readonly<Record<string, string>>;
  /**
   * Request body as buffered by Envoy, when any: bytes when Envoy packs it as bytes (our
   * bootstraps do, so invalid UTF-8 can be refused), text otherwise.
   */
  readonly body?: string | Buffer;
  /** Source IP when known. */
  readonly sourceIp?: string;
}
