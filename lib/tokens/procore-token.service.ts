import { Injectable } from '@nestjs/common';
import type {
  ProcoreAuthorizationRequest,
  ProcoreCallbackResult,
  ProcoreConnection,
} from '../interfaces/procore-connection.interface.js';
import type { ProcoreTokenResponse } from '../interfaces/procore-token-response.interface.js';
import { ProcoreAuthorizationFlow } from './procore-authorization-flow.js';
import type { ProcoreOwnerId } from './procore-owner-id.js';
import { ProcoreServiceAccounts } from './procore-service-accounts.js';
import { ProcoreUserTokens } from './procore-user-tokens.js';

export type { ProcoreOwnerId } from './procore-owner-id.js';

/**
 * Procore tokens for your app's users (owners) and for the app itself (client credentials).
 * `getAccessToken()` is the call to make before every Procore request: it serves from memory when
 * it can and refreshes, exactly once across instances, when it must.
 * @publicApi
 */
@Injectable()
export class ProcoreTokenService {
  // The work is done by three providers, one per kind of token; this class is their public face
  // (the names SPEC.md and the README give). Each method forwards its call unchanged. The shutdown
  // drain is ProcoreUserTokens': Nest runs shutdown hooks of deeper providers first, and this one
  // is deeper than the scheduler, whose hook must stop its tick while the drain waits.
  constructor(
    private readonly authorization: ProcoreAuthorizationFlow,
    private readonly userTokens: ProcoreUserTokens,
    private readonly serviceAccounts: ProcoreServiceAccounts,
  ) {}

  /**
   * Starts the authorization-code flow for an owner: a one-time `state` bound to the owner,
   * valid for `stateTtlSeconds` (default 10 minutes), stored as a hash; PKCE S256 when `pkce` is on.
   * `returnTo` must be a same-origin path.
   */
  getAuthorizationUrl(
    ownerId: ProcoreOwnerId,
    options: { returnTo?: string } = {},
  ): Promise<ProcoreAuthorizationRequest> {
    return this.authorization.getAuthorizationUrl(ownerId, options);
  }

  /**
   * Completes the flow: verifies `state` (one-time, unexpired, and, when `ownerId` is given,
   * started by the same owner), exchanges the code and stores the connection. On any bad input
   * it throws `ProcoreOAuthStateError` and stores nothing.
   */
  handleCallback(params: {
    code?: string | null;
    state?: string | null;
    error?: string | null;
    ownerId?: ProcoreOwnerId;
  }): Promise<ProcoreCallbackResult> {
    return this.authorization.handleCallback(params);
  }

  /**
   * Adopts tokens obtained elsewhere (a migration from another integration). The expiry is taken
   * from `created_at` + `expires_in` when Procore's `created_at` is given, else from now.
   */
  importTokens(
    ownerId: ProcoreOwnerId,
    tokenResponse: ProcoreTokenResponse,
  ): Promise<ProcoreConnection> {
    return this.authorization.importTokens(ownerId, tokenResponse);
  }

  /**
   * A valid access token for the owner. Served from memory while more than `refreshSkewSeconds`
   * remain; otherwise read (one indexed query) and, when stale, refreshed exactly once.
   * Throws `ProcoreReauthorizationRequiredError` when the owner must (re)connect.
   */
  getAccessToken(ownerId: ProcoreOwnerId): Promise<string> {
    return this.userTokens.getAccessToken(ownerId);
  }

  /**
   * The first step of `getAccessToken()` alone, synchronously: the owner's token when the
   * in-memory cache holds it with more than `refreshSkewSeconds` left (counted as a cache hit and
   * a use, like `getAccessToken()`), else `undefined` (call `getAccessToken()`). Lets the request
   * path hand a cached token to a handler without a promise. @internal
   */
  cachedAccessToken(ownerId: ProcoreOwnerId): string | undefined {
    return this.userTokens.cachedAccessToken(ownerId);
  }

  /** Forces a refresh now, under the same exactly-once protocol, and returns the new access token. */
  refresh(ownerId: ProcoreOwnerId): Promise<string> {
    return this.userTokens.refresh(ownerId);
  }

  /**
   * Procore's API answered 401 to `rejectedToken`: returns a token to retry with. Concurrent calls
   * rejected on one token generation share ONE forced refresh (under the exactly-once protocol);
   * a caller that comes late, after the refresh, gets the newer stored token without another one.
   * Throws `ProcoreReauthorizationRequiredError` when Procore refuses the refresh (`invalid_grant`).
   * Used by `ProcoreClient`.
   */
  refreshRejected(ownerId: ProcoreOwnerId, rejectedToken: string): Promise<string> {
    return this.userTokens.refreshRejected(ownerId, rejectedToken);
  }

  /**
   * Revokes the owner's grant at Procore (access and refresh token), then marks the connection
   * `revoked` and erases its tokens. Does nothing for an unknown or already revoked owner. If
   * Procore cannot be reached the error is thrown and the connection is kept, so it can be retried.
   */
  revoke(ownerId: ProcoreOwnerId): Promise<void> {
    return this.userTokens.revoke(ownerId);
  }

  /** The owner's connection status and timestamps (no secrets), or null. */
  getConnection(ownerId: ProcoreOwnerId): Promise<ProcoreConnection | null> {
    return this.userTokens.getConnection(ownerId);
  }

  /**
   * The app's own (service-account) token from the client-credentials grant, cached in memory
   * until `refreshSkewSeconds` before it expires; concurrent callers share one token request.
   * With a `name`, the token of that named service account (`serviceAccounts` option), cached and
   * fetched the same way, independently of the others. Throws `ProcoreConfigurationError` for a
   * name that is not configured, or when Procore refuses the account's credentials
   * (`invalid_client`: its secret was probably regenerated).
   */
  getClientCredentialsToken(name?: string): Promise<string> {
    return this.serviceAccounts.getToken(name);
  }

  /** Drops the owner's cached token on this instance (others drop theirs within `cache.ttlSeconds`). */
  evict(ownerId: ProcoreOwnerId): void {
    return this.userTokens.evict(ownerId);
  }
}
