import { Inject, Injectable, Logger, type BeforeApplicationShutdown } from '@nestjs/common';
import type { ResolvedProcoreAuthOptions } from '../config/resolve-procore-auth-options.js';
import { openAccessToken, openRefreshToken } from '../crypto/connection-secrets.js';
import type { TokenCipher } from '../crypto/token-cipher.js';
import { ProcoreShutdownError } from '../errors/procore-shutdown.error.js';
import { ProcoreAuthEvents, ProcoreAuthEventType } from '../events/procore-auth.events.js';
import type { ProcoreConnection } from '../interfaces/procore-connection.interface.js';
import { ProcoreMetrics } from '../metrics/procore-metrics.js';
import { isTransient, ProcoreOAuthClient } from '../oauth/procore-oauth.client.js';
import { retryDelayMs } from '../oauth/retry-policy.js';
import { PROCORE_AUTH_OPTIONS, PROCORE_TOKEN_CIPHER } from '../procore-auth.constants.js';
import { ProcoreInFlightOperations } from '../refresh/in-flight-operations.js';
import {
  assertConnected,
  MAYBE_CONSUMED,
  ProcoreTokenRefresher,
  type IssuedAccessToken,
} from '../refresh/procore-token.refresher.js';
import { asProcoreError } from '../storage/storage-errors.js';
import { ProcoreTokenStore, type ProcoreTokenRecord } from '../storage/procore-token.store.js';
import { AccessTokenCache } from './access-token.cache.js';
import { LastUsedRecorder } from './last-used.recorder.js';
import { normalizeOwner, ownerLookupKey, type ProcoreOwnerId } from './procore-owner-id.js';
import { SingleFlight } from './single-flight.js';

/** A stored connection as the public API shows it: status and timestamps, never a secret. */
export function toConnection(record: ProcoreTokenRecord): ProcoreConnection {
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
 * The tokens of connected users (owners): the in-memory cache, the request-path read and refresh,
 * forced refreshes, revocation and the connection status. `ProcoreTokenService` is its public face.
 */
@Injectable()
export class ProcoreUserTokens implements BeforeApplicationShutdown {
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
    private readonly client: ProcoreOAuthClient,
    private readonly refresher: ProcoreTokenRefresher,
    private readonly events: ProcoreAuthEvents,
    private readonly inFlight: ProcoreInFlightOperations,
    private readonly metrics: ProcoreMetrics,
  ) {
    this.lastUsed = new LastUsedRecorder(store, options.touchIntervalSeconds * 1000);
    this.cache = new AccessTokenCache(
      options.cache.maxEntries,
      options.cache.ttlSeconds,
      Date,
      this.lastUsed,
    );
  }

  private get skewMs(): number {
    return this.options.refreshSkewSeconds * 1000;
  }

  async getAccessToken(ownerId: ProcoreOwnerId): Promise<string> {
    const owner = ownerLookupKey(ownerId);
    const cached = this.served(owner);
    if (cached !== undefined) return cached;
    // served() has checked the id on its miss: `owner` is the normalized id now.
    this.metrics.cacheMiss();
    const issued = await this.loads.run(owner, () => this.load(owner));
    this.lastUsed.record(owner);
    return issued.token;
  }

  cachedAccessToken(ownerId: ProcoreOwnerId): string | undefined {
    return this.served(ownerLookupKey(ownerId));
  }

  /**
   * The cached token for an owner's lookup key (`ownerLookupKey()`). The full check of the id runs
   * on a miss only, and throws for an invalid one. A hit records the use too (at most once per
   * touch interval per entry).
   */
  private served(owner: string): string | undefined {
    const cached = this.cache.use(owner, this.skewMs);
    if (cached === undefined) {
      normalizeOwner(owner);
      return undefined;
    }
    this.metrics.cacheHit();
    return cached;
  }

  async refresh(ownerId: ProcoreOwnerId): Promise<string> {
    const owner = normalizeOwner(ownerId);
    const issued = await this.forcedRefreshes.run(owner, async () => {
      const record = await this.find(owner);
      assertConnected(owner, record, this.options.environment);
      return this.refreshAndCache(owner, 'manual', this.skewMs, record.version);
    });
    return issued.token;
  }

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

  async revoke(ownerId: ProcoreOwnerId): Promise<void> {
    const owner = normalizeOwner(ownerId);
    this.cache.delete(owner);
    const revoked = await this.inFlight.run('a revocation', () => this.revokeLocked(owner));
    this.cache.delete(owner);
    if (revoked)
      this.events.emit({ type: ProcoreAuthEventType.Revoked, ownerId: owner, at: new Date() });
  }

  async getConnection(ownerId: ProcoreOwnerId): Promise<ProcoreConnection | null> {
    const record = await this.find(normalizeOwner(ownerId));
    return record ? toConnection(record) : null;
  }

  evict(ownerId: ProcoreOwnerId): void {
    this.cache.delete(normalizeOwner(ownerId));
  }

  /** Caches `token` as the owner's access token (the authorization flow stored it). */
  remember(owner: string, token: string, expiresAt: Date): void {
    this.cache.set(owner, token, expiresAt);
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

  /** One indexed read; a database failure becomes a `ProcoreStorageError`. */
  private find(owner: string): Promise<ProcoreTokenRecord | null> {
    return this.store.find(owner).catch((error: unknown) => {
      throw asProcoreError(error, owner, 'reading the connection');
    });
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

  /** A token that cannot be decrypted any more cannot be revoked at Procore; the row is still closed. */
  private tryOpen(open: () => string | undefined): string | undefined {
    try {
      return open();
    } catch (error) {
      this.logger.warn(`Revoking without calling Procore: ${(error as Error).message}`);
      return undefined;
    }
  }

  /**
   * The token that revokes a connection's grant at Procore: its refresh token, unless that may be
   * consumed already (a refresh answer was lost, so Procore holds a newer one we never saw): then
   * the access token, which names the same grant.
   */
  tokenToRevoke(record: ProcoreTokenRecord): string | undefined {
    const refreshMayBeConsumed = MAYBE_CONSUMED.has(record.lastErrorCode);
    return this.tryOpen(() =>
      refreshMayBeConsumed
        ? (openAccessToken(this.cipher, record) ?? openRefreshToken(this.cipher, record))
        : (openRefreshToken(this.cipher, record) ?? openAccessToken(this.cipher, record)),
    );
  }
}
