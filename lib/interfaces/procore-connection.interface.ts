import type { ProcoreConnectionStatus } from '../storage/procore-token.entity.js';

/** A connection's status and timestamps, as `getConnection()` returns it. Never contains secrets. */
export interface ProcoreConnection {
  ownerId: string;
  environment: string;
  status: ProcoreConnectionStatus;
  /** When the current access token expires (null once revoked or reauthorization is required). */
  expiresAt: Date | null;
  connectedAt: Date;
  lastRefreshedAt: Date | null;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
  failureCount: number;
  /** Last failure, e.g. `invalid_grant`, `refresh_response_lost`, `http_503`. */
  lastErrorCode: string | null;
  lastErrorAt: Date | null;
  /** Token generation, bumped on every refresh or reconnect. */
  version: number;
}

/** Result of `getAuthorizationUrl()`. */
export interface ProcoreAuthorizationRequest {
  /** Procore's authorize URL to redirect the user to. */
  url: string;
  /** The one-time `state` in that URL (stored only as a hash). */
  state: string;
}

/** Result of `handleCallback()`. */
export interface ProcoreCallbackResult {
  connection: ProcoreConnection;
  /** The same-origin path given to `getAuthorizationUrl()`, if any. */
  returnTo: string | null;
}
