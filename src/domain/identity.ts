/** The caller, as a verified token names it. */

/** The verified caller. */
export interface Identity {
  readonly provider: string;
  readonly issuer: string;
  readonly subject: string;
  /** Value of the provider's `claims.user` mapping (falls back to `sub`). */
  readonly user: string;
  readonly groups: readonly string[];
  readonly tenant?: string;
  /** The verified payload, for claim-path lookups. */
  readonly claims: Readonly<Record<string, unknown>>;
  /** Token expiry, epoch seconds. */
  readonly expiresAt: number;
}

/**
 * A token with less than this many seconds left is refreshed before it is handed out (`tollgate
 * token`, the portal's copy button and page), so a request made with it does not expire in flight.
 */
export const REFRESH_MARGIN_S = 60;
