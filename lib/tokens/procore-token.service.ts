import { Inject, Injectable, Logger, type BeforeApplicationShutdown } from '@nestjs/common';
import { createHash, randomBytes } from 'node:crypto';
import type { ResolvedProcoreAuthOptions } from '../config/resolve-procore-auth-options.js';
import { openAccessToken, openRefreshToken, sealTokens } from '../crypto/connection-secrets.js';
import type { TokenCipher } from '../crypto/token-cipher.js';
import { ProcoreOAuthStateError } from '../errors/procore-oauth-state.error.js';
import { ProcoreAuthEvents, ProcoreAuthEventType } from '../events/procore-auth.events.js';
import type {
  ProcoreAuthorizationRequest,
  ProcoreCallbackResult,
  ProcoreConnection,
} from '../interfaces/procore-connection.interface.js';
import type { ProcoreTokenResponse } from '../interfaces/procore-token-response.interface.js';
import { isTransient, ProcoreOAuthClient } from '../oauth/procore-oauth.client.js';
import { assertSafeReturnTo } from '../oauth/return-to.js';
import { PROCORE_AUTH_OPTIONS, PROCORE_TOKEN_CIPHER } from '../procore-auth.constants.js';
import { ProcoreMetrics } from '../metrics/procore-metrics.js';
import { ProcoreInFlightOperations } from '../refresh/in-flight-operations.js';
import {
  assertConnected,
  errorCodeOf,
  MAYBE_CONSUMED,
  ProcoreTokenRefresher,
  type IssuedAccessToken,
} from '../refresh/procore-token.refresher.js';
import { retryDelayMs } from '../oauth/retry-policy.js';
import { ProcoreShutdownError } from '../errors/procore-shutdown.error.js';
import { asProcoreError } from '../storage/storage-errors.js';
import { ProcoreOAuthStateStore } from '../storage/procore-oauth-state.store.js';
import { ProcoreTokenStore, type ProcoreTokenRecord } from '../storage/procore-token.store.js';
import { AccessTokenCache } from './access-token.cache.js';
import { LastUsedRecorder } from './last-used.recorder.js';
import { ProcoreServiceAccounts } from './procore-service-accounts.js';
import { SingleFlight } from './single-flight.js';
import { normalizeOwner, type ProcoreOwnerId } from './procore-owner-id.js';

export type { ProcoreOwnerId } from './procore-owner-id.js';
import { parseTokenResponse } from '../oauth/token-response.parser.js';

function hashState(state: string): string {
  return createHash('sha256').update(state, 'utf8').digest('hex');
}

function toConnection(record: ProcoreTokenRecord): ProcoreConnection {
  return {
    ownerId: record.ownerId,
    environment: record.environment,
    status: record.status,
    expiresAt: record.expiresAt,
    connectedAt: record.connectedAt,
    lastRefreshedAt: record.lastRefreshedAt,
    lastUsedAt: record.lastUsedAt,
    revokedAt: record.revokedAt,
    failureCount: record.failureCount,
    lastErrorCode: record.lastErrorCode,
    lastErrorAt: record.lastErrorAt,
    version: record.version,
  };
}

/**
 * Procore tokens for your app's users (owners) and for the app itself (client credentials).
 * `getAccessToken()` is the call to make before every Procore request: it serves from memory when
 * it can and refreshes, exactly once across instances, when it must.
 * @publicApi
 */
@Injectable()
export class ProcoreTokenService implements BeforeApplicationShutdown {
  private readonly logger = new Logger('ProcoreAuth');
  private readonly cache: AccessTokenCache;
  // Two maps, so no owner id can join another kind of call (`force:<owner>` was once a key here).
  private readonly loads = new SingleFlight<IssuedAccessToken>();
  private readonly forcedRefreshes = new SingleFlight<IssuedAccessToken>();
  private readonly rejections = new SingleFlight<IssuedAccessToken>();
  private readonly lastUsed: LastUsedRecorder;

  constructor(
    @Inject(PROCORE_AUTH_OPTIONS) private readonly options: ResolvedProcoreAuthOptions,
    @Inject(PROCORE_TOKEN_CIPHER) private readonly cipher: TokenCipher,
    private readonly store: ProcoreTokenStore,
    private readonly stateStore: ProcoreOAuthStateStore,
    private readonly client: ProcoreOAuthClient,
    private readonly refresher: ProcoreTokenRefresher,
    private readonly events: ProcoreAuthEvents,
    private readonly inFlight: ProcoreInFlightOperations,
    private readonly serviceAccounts: ProcoreServiceAccounts,
    private readonly metrics: ProcoreMetrics,
  ) {
    this.cache = new AccessTokenCache(options.cache.maxEntries, options.cache.ttlSeconds);
    this.lastUsed = new LastUsedRecorder(store, options.touchIntervalSeconds * 1000);
  }

  private get skewMs(): number {
    return this.options.refreshSkewSeconds * 1000;
  }

  /**
   * Starts the authorization-code flow for an owner: a one-time `state` bound to the owner,
   * valid for `stateTtlSeconds` (default 10 minutes), stored as a hash; PKCE S256 when `pkce` is on.
   * `returnTo` must be a same-origin path.
   */
  async getAuthorizationUrl(
    ownerId: ProcoreOwnerId,
    options: { returnTo?: string } = {},
  ): Promise<ProcoreAuthorizationRequest> {
    const owner = normalizeOwner(ownerId);
    const returnTo = options.returnTo === undefined ? null : assertSafeReturnTo(options.returnTo);
    const state = randomBytes(32).toString('base64url');
    const stateHash = hashState(state);
    const verifier = this.options.pkce ? randomBytes(48).toString('base64url') : undefined;
    await this.stateStore.save({
      stateHash,
      ownerId: owner,
      codeVerifier: verifier
        ? this.cipher.encrypt(verifier, `procore-oauth-state:${stateHash}`)
        : null,
      returnTo,
      expiresAt: new Date(Date.now() + this.options.stateTtlSeconds * 1000),
    });
    const challenge = verifier
      ? createHash('sha256').update(verifier).digest('base64url')
      : undefined;
    return { url: this.client.authorizeUrl(state, challenge), state };
  }

  /**
   * Completes the flow: verifies `state` (one-time, unexpired, and, when `ownerId` is given,
   * started by the same owner), exchanges the code and stores the connection. On any bad input
   * it throws `ProcoreOAuthStateError` and stores nothing.
   */
  async handleCallback(params: {
    code?: string | null;
    state?: string | null;
    error?: string | null;
    ownerId?: ProcoreOwnerId;
  }): Promise<ProcoreCallbackResult> {
    if (!params.state)
      throw new ProcoreOAuthStateError('missing_state', 'The callback has no state parameter.');
    const owner = params.ownerId === undefined ? undefined : normalizeOwner(params.ownerId);
    const consumed = await this.stateStore.consume(hashState(params.state), owner);
    if (consumed.kind === 'unknown') {
      throw new ProcoreOAuthStateError(
        'unknown_state',
        'The state is unknown or was already used: start the authorization again.',
      );
    }
    if (consumed.kind === 'owner_mismatch') {
      throw new ProcoreOAuthStateError(
        'owner_mismatch',
        'The state was issued to another user: start the authorization again.',
      );
    }
    const { record } = consumed;
    if (record.expiresAt.getTime() <= Date.now()) {
      throw new ProcoreOAuthStateError(
        'expired_state',
        'The state has expired: start the authorization again.',
      );
    }
    if (params.error) {
      const error = /^[a-z_]{1,64}$/.test(params.error) ? params.error : 'unknown_error';
      throw new ProcoreOAuthStateError(
        'access_denied',
        `Procore did not authorize the app (${error}).`,
      );
    }
    if (!params.code)
      throw new ProcoreOAuthStateError('missing_code', 'The callback has no code parameter.');
    const verifier = record.codeVerifier
      ? this.cipher.decrypt(record.codeVerifier, `procore-oauth-state:${record.stateHash}`)
      : undefined;
    const code = params.code;
    // Tracked for shutdown: the code is single-use, so an exchange cut off before the tokens are
    // stored would leave a grant at Procore that nobody holds.
    return this.inFlight.run('an authorization callback', async () => {
      const startedAt = Date.now();
      const response = await this.client.exchangeCode(code, verifier);
      const connection = await this.storeTokens(record.ownerId, response, startedAt);
      return { connection, returnTo: record.returnTo };
    });
  }

  /**
   * Adopts tokens obtained elsewhere (a migration from another integration). The expiry is taken
   * from `created_at` + `expires_in` when Procore's `created_at` is given, else from now.
   */
  async importTokens(
    ownerId: ProcoreOwnerId,
    tokenResponse: ProcoreTokenResponse,
  ): Promise<ProcoreConnection> {
    const response = parseTokenResponse(tokenResponse, 'importTokens()');
    const issuedAt = response.created_at !== undefined ? response.created_at * 1000 : Date.now();
    const owner = normalizeOwner(ownerId);
    return this.inFlight.run('an import', () => this.storeTokens(owner, response, issuedAt));
  }

  /**
   * A valid access token for the owner. Served from memory while more than `refreshSkewSeconds`
   * remain; otherwise read (one indexed query) and, when stale, refreshed exactly once.
   * Throws `ProcoreReauthorizationRequiredError` when the owner must (re)connect.
   */
  async getAccessToken(ownerId: ProcoreOwnerId): Promise<string> {
    const cached = this.cachedAccessToken(ownerId);
    if (cached !== undefined) return cached;
    const owner = normalizeOwner(ownerId);
    this.metrics.cacheMiss();
    const issued = await this.loads.run(owner, () => this.load(owner));
    this.lastUsed.record(owner);
    return issued.token;
  }

  /**
   * The first step of `getAccessToken()` alone, synchronously: the owner's token when the
   * in-memory cache holds it with more than `refreshSkewSeconds` left (counted as a cache hit and
   * a use, like `getAccessToken()`), else `undefined` (call `getAccessToken()`). Lets the request
   * path hand a cached token to a handler without a promise. @internal
   */
  cachedAccessToken(ownerId: ProcoreOwnerId): string | undefined {
    const owner = normalizeOwner(ownerId);
    const cached = this.cache.get(owner, this.skewMs);
    if (cached === undefined) return undefined;
    this.metrics.cacheHit();
    this.lastUsed.record(owner);
    return cached;
  }

  /** Forces a refresh now, under the same exactly-once protocol, and returns the new access token. */
  async refresh(ownerId: ProcoreOwnerId): Promise<string> {
    const owner = normalizeOwner(ownerId);
    const issued = await this.forcedRefreshes.run(owner, async () => {
      const record = await this.find(owner);
      assertConnected(owner, record, this.options.environment);
      return this.refreshAndCache(owner, 'manual', this.skewMs, record.version);
    });
    return issued.token;
  }

  /**
   * Procore's API answered 401 to `rejectedToken`: returns a token to retry with. Concurrent calls
   * rejected on one token generation share ONE forced refresh (under the exactly-once protocol);
   * a caller that comes late, after the refresh, gets the newer stored token without another one.
   * Throws `ProcoreReauthorizationRequiredError` when Procore refuses the refresh (`invalid_grant`).
   * Used by `ProcoreClient`.
   */
  async refreshRejected(ownerId: ProcoreOwnerId, rejectedToken: string): Promise<string> {
    const owner = normalizeOwner(ownerId);
    if (this.cache.get(owner, 0) === rejectedToken) this.cache.delete(owner);
    const issued = await this.rejections.run(owner, async () => {
      const record = await this.find(owner);
      assertConnected(owner, record, this.options.environment);
      if (this.refresher.isFresh(record, this.skewMs)) {
        const stored = this.refresher.issued(record);
        if (stored.token !== rejectedToken) {
          this.cache.set(owner, stored.token, stored.expiresAt);
          return stored;
        }
      }
      return this.refreshAndCache(owner, 'unauthorized', this.skewMs, record.version);
    });
    return issued.token;
  }

  /**
   * Revokes the owner's grant at Procore (access and refresh token), then marks the connection
   * `revoked` and erases its tokens. Does nothing for an unknown or already revoked owner. If
   * Procore cannot be reached the error is thrown and the connection is kept, so it can be retried.
   */
  async revoke(ownerId: ProcoreOwnerId): Promise<void> {
    const owner = normalizeOwner(ownerId);
    this.cache.delete(owner);
    const revoked = await this.inFlight.run('a revocation', () => this.revokeLocked(owner));
    this.cache.delete(owner);
    if (revoked)
      this.events.emit({ type: ProcoreAuthEventType.Revoked, ownerId: owner, at: new Date() });
  }

  /**
   * One locked attempt per call to Procore's revoke endpoint: the row lock is never held across a
   * retry pause (transient failures are retried with a fresh lock, and the row re-read).
   */
  private async revokeLocked(owner: string): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.store.withLock(
          owner,
          this.options.lockTimeoutMs,
          async (record, writer) => {
            if (!record || record.status === 'revoked') return false;
            const token = this.tokenToRevoke(record);
            // Tokens of another environment are never sent to this environment's hosts.
            if (token && record.environment === this.options.environment) {
              if (!this.inFlight.hasTimeFor(this.options.http.timeoutMs + 1_000)) {
                throw new ProcoreShutdownError('a revocation');
              }
              await this.client.revoke(token);
            }
            await writer.update({
              status: 'revoked',
              accessToken: null,
              refreshToken: null,
              keyId: null,
              expiresAt: null,
              revokedAt: new Date(),
              version: record.version + 1,
            });
            return true;
          },
        );
      } catch (error) {
        const delay =
          attempt < this.options.http.retries && isTransient(error)
            ? retryDelayMs(this.options.http, attempt, error)
            : undefined;
        if (delay === undefined) throw asProcoreError(error, owner, 'revoking');
        await this.inFlight.pause(delay, 'a revocation retry');
      }
    }
  }

  /** The owner's connection status and timestamps (no secrets), or null. */
  async getConnection(ownerId: ProcoreOwnerId): Promise<ProcoreConnection | null> {
    const record = await this.find(normalizeOwner(ownerId));
    return record ? toConnection(record) : null;
  }

  /** One indexed read; a database failure becomes a `ProcoreStorageError`. */
  private find(owner: string): Promise<ProcoreTokenRecord | null> {
    return this.store.find(owner).catch((error: unknown) => {
      throw asProcoreError(error, owner, 'reading the connection');
    });
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
    this.cache.delete(normalizeOwner(ownerId));
  }

  /**
   * Waits (at most `shutdownTimeoutMs`) for refreshes and revocations in flight, so none loses a
   * rotated token to the DataSource closing under it, then writes pending "last used" times.
   */
  async beforeApplicationShutdown(): Promise<void> {
    const running = this.inFlight.size;
    const left = await this.inFlight.drain(this.options.shutdownTimeoutMs);
    if (left > 0) {
      this.logger.error(
        `${left} Procore token operation(s) still running after shutdownTimeoutMs (${this.options.shutdownTimeoutMs} ms): their rotated tokens may be lost.`,
      );
    } else if (running > 0) {
      this.logger.log(`Finished ${running} Procore token operation(s) before shutting down.`);
    }
    await this.lastUsed.flush();
  }

  /** Cache miss: one indexed read; refresh only when the stored token is stale too. */
  private async load(owner: string): Promise<IssuedAccessToken> {
    const record = await this.find(owner);
    assertConnected(owner, record, this.options.environment);
    if (this.refresher.isFresh(record, this.skewMs)) {
      const issued = this.refresher.issued(record);
      this.cache.set(owner, issued.token, issued.expiresAt);
      return issued;
    }
    return this.refreshAndCache(owner, 'request', this.skewMs);
  }

  private async refreshAndCache(
    owner: string,
    trigger: 'request' | 'manual' | 'unauthorized',
    marginMs: number,
    seenVersion?: number,
  ): Promise<IssuedAccessToken> {
    try {
      const issued = await this.refresher.refresh(owner, trigger, marginMs, seenVersion);
      this.cache.set(owner, issued.token, issued.expiresAt);
      return issued;
    } catch (error) {
      this.cache.delete(owner);
      throw error;
    }
  }

  private async storeTokens(
    owner: string,
    response: ProcoreTokenResponse,
    issuedAt: number,
  ): Promise<ProcoreConnection> {
    const sealed = sealTokens(this.cipher, owner, response.access_token, response.refresh_token);
    const expiresAt = new Date(issuedAt + response.expires_in * 1000);
    const { record, replaced } = await this.store
      .upsert(
        owner,
        {
          ...sealed,
          environment: this.options.environment,
          expiresAt,
          tokenLifetimeSeconds: Math.round(response.expires_in),
        },
        this.options.lockTimeoutMs,
      )
      .catch((error: unknown) => {
        throw asProcoreError(error, owner, 'storing a new connection');
      });
    this.cache.set(owner, response.access_token, expiresAt);
    this.events.emit({ type: ProcoreAuthEventType.Connected, ownerId: owner, at: new Date() });
    if (replaced) await this.revokeReplaced(replaced, response);
    return toConnection(record);
  }

  /**
   * A reconnect replaced a live grant: revoke it at Procore (best effort, after the new tokens
   * were committed), or it would stay valid there, unreachable for us. Skipped when the replaced
   * tokens are the ones just stored (a repeated import) or belong to another environment.
   */
  private async revokeReplaced(
    replaced: ProcoreTokenRecord,
    response: ProcoreTokenResponse,
  ): Promise<void> {
    if (replaced.status !== 'active' || replaced.environment !== this.options.environment) return;
    const token = this.tokenToRevoke(replaced);
    if (!token || token === response.refresh_token || token === response.access_token) return;
    try {
      await this.inFlight.run('revoking a replaced grant', async () => {
        for (let attempt = 0; ; attempt++) {
          try {
            return await this.client.revoke(token);
          } catch (error) {
            const delay =
              attempt < this.options.http.retries && isTransient(error)
                ? retryDelayMs(this.options.http, attempt, error)
                : undefined;
            if (delay === undefined) throw error;
            await this.inFlight.pause(delay, 'a revocation retry');
          }
        }
      });
    } catch (error) {
      this.logger.warn(
        `Could not revoke the replaced Procore grant of owner "${replaced.ownerId}" (${errorCodeOf(error)}): it stays valid at Procore until the user removes the app.`,
      );
    }
  }

  /**
   * The token that revokes a connection's grant at Procore: its refresh token, unless that may be
   * consumed already (a refresh answer was lost, so Procore holds a newer one we never saw): then
   * the access token, which names the same grant.
   */
  private tokenToRevoke(record: ProcoreTokenRecord): string | undefined {
    const refreshMayBeConsumed = MAYBE_CONSUMED.has(record.lastErrorCode);
    return this.tryOpen(() =>
      refreshMayBeConsumed
        ? (openAccessToken(this.cipher, record) ?? openRefreshToken(this.cipher, record))
        : (openRefreshToken(this.cipher, record) ?? openAccessToken(this.cipher, record)),
    );
  }

  /** A token that cannot be decrypted any more cannot be revoked at Procore; the row is still closed. */
  private tryOpen(open: () => string | undefined): string | undefined {
    try {
      return open();
    } catch (error) {
      this.logger.warn(`Revoking without calling Procore: ${(error as Error).message}`);
      return undefined;
    }
  }
}
