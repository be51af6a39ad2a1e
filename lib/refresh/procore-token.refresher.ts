import { Inject, Injectable } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ResolvedProcoreAuthOptions } from '../config/resolve-procore-auth-options.js';
import { openAccessToken, openRefreshToken, sealTokens } from '../crypto/connection-secrets.js';
import type { TokenCipher } from '../crypto/token-cipher.js';
import { ProcoreConfigurationError } from '../errors/procore-configuration.error.js';
import { ProcoreOAuthError } from '../errors/procore-oauth.error.js';
import { ProcoreReauthorizationRequiredError } from '../errors/procore-reauthorization-required.error.js';
import { ProcoreTokenRefreshError } from '../errors/procore-token-refresh.error.js';
import { ProcoreTransientError } from '../errors/procore-transient.error.js';
import {
  ProcoreAuthEvents,
  ProcoreAuthEventType,
  type ProcoreRefreshTrigger,
} from '../events/procore-auth.events.js';
import type { ProcoreTokenResponse } from '../interfaces/procore-token-response.interface.js';
import { ProcoreOAuthClient } from '../oauth/procore-oauth.client.js';
import { retryDelayMs } from '../oauth/retry-policy.js';
import { PROCORE_AUTH_OPTIONS, PROCORE_TOKEN_CIPHER } from '../procore-auth.constants.js';
import {
  ProcoreTokenStore,
  type LockedTokenWriter,
  type ProcoreTokenRecord,
} from '../storage/procore-token.store.js';

/** Recorded when a refresh call's outcome is unknown (5xx/timeout/reset after it was sent). */
export const OUTCOME_UNKNOWN = 'refresh_outcome_unknown';
/** Recorded when the refresh token was consumed by a call whose response never reached us. */
export const RESPONSE_LOST = 'refresh_response_lost';

/** A usable access token and when it expires. */
export interface IssuedAccessToken {
  token: string;
  expiresAt: Date;
  /** True when this call refreshed it; false when the stored token was fresh (someone else refreshed). */
  refreshed?: boolean;
}

/** What one run of the protocol decided, acted on after the transaction committed. */
type Outcome =
  | { kind: 'fresh'; issued: IssuedAccessToken }
  | { kind: 'refreshed'; issued: IssuedAccessToken; version: number }
  | { kind: 'reauthorization'; cause: string }
  | { kind: 'failed'; error: unknown; attempts: number };

/**
 * The refresh protocol: exactly one refresh per token generation, however many callers and
 * instances race, and a rotated refresh token is never lost.
 *
 * 1. The caller (ProcoreTokenService) already served cache hits and joined the in-process
 *    single-flight for the owner, so one call per owner per instance gets here.
 * 2. Lock the owner's row (`SELECT ... FOR UPDATE`) in a transaction and read it again: another
 *    instance may have refreshed while we waited; then its token is returned.
 * 3. Only if the row is still stale, call Procore's token endpoint with its refresh token.
 * 4. Write both new tokens (encrypted), the expiry (request start + `expires_in`) and the bumped
 *    version through the locked transaction, commit, and only then hand out the access token.
 *
 * The row lock is held across one HTTP round trip on purpose: PostgreSQL releases it when the
 * process dies, and only one caller per owner waits on it (bounded by `lockTimeoutMs`).
 */
@Injectable()
export class ProcoreTokenRefresher {
  constructor(
    @Inject(PROCORE_AUTH_OPTIONS) private readonly options: ResolvedProcoreAuthOptions,
    @Inject(PROCORE_TOKEN_CIPHER) private readonly cipher: TokenCipher,
    private readonly store: ProcoreTokenStore,
    private readonly client: ProcoreOAuthClient,
    private readonly events: ProcoreAuthEvents,
  ) {}

  /** Whether a row's access token still has more than `marginMs` left. */
  isFresh(record: ProcoreTokenRecord, marginMs: number): boolean {
    return (
      record.accessToken !== null &&
      record.expiresAt !== null &&
      record.expiresAt.getTime() - Date.now() > marginMs
    );
  }

  /**
   * Returns a valid access token for the owner, refreshing under the row lock if the stored one
   * has `marginMs` or less left (a function: the margin depends on the row, as the scheduler's does). With `seenVersion`, refreshes unless the row moved past that
   * version meanwhile (a forced refresh that someone else already did counts as done).
   */
  async refresh(
    ownerId: string,
    trigger: ProcoreRefreshTrigger,
    marginMs: number | ((record: ProcoreTokenRecord) => number),
    seenVersion?: number,
  ): Promise<IssuedAccessToken> {
    const outcome = await this.store.withLock(
      ownerId,
      this.options.lockTimeoutMs,
      (record, writer) => {
        assertConnected(ownerId, record, this.options.environment);
        const margin = typeof marginMs === 'function' ? marginMs(record) : marginMs;
        const refreshedMeanwhile =
          seenVersion === undefined ? this.isFresh(record, margin) : record.version !== seenVersion;
        if (refreshedMeanwhile && this.isFresh(record, 0)) {
          return Promise.resolve<Outcome>({ kind: 'fresh', issued: this.issued(record) });
        }
        return this.refreshLocked(record, writer);
      },
    );
    return this.settle(ownerId, trigger, outcome);
  }

  /** Step 3 and 4, inside the transaction that holds the row lock. */
  private async refreshLocked(
    record: ProcoreTokenRecord,
    writer: LockedTokenWriter,
  ): Promise<Outcome> {
    const refreshToken = openRefreshToken(this.cipher, record);
    if (!refreshToken) return this.requireReauthorization(writer, record, 'no_refresh_token');
    const { retries } = this.options.http;
    // Set once a call may have reached Procore: its refresh token may be consumed already.
    let outcomeUnknown = record.lastErrorCode === OUTCOME_UNKNOWN;
    for (let attempt = 0; ; attempt++) {
      const startedAt = Date.now();
      try {
        const response = await this.client.refresh(refreshToken);
        return await this.persist(record, writer, response, refreshToken, startedAt);
      } catch (error) {
        if (error instanceof ProcoreOAuthError && error.error === 'invalid_grant') {
          // Procore no longer honours this refresh token. If an earlier call's answer was lost,
          // that call consumed it: say so, it tells operators it was not the user who revoked.
          const cause = outcomeUnknown ? RESPONSE_LOST : 'invalid_grant';
          return this.requireReauthorization(writer, record, cause);
        }
        if (error instanceof ProcoreConfigurationError) {
          // invalid_client: the app's credentials are wrong, not the user's grant. Leave the row as it is.
          return { kind: 'failed', error, attempts: attempt + 1 };
        }
        if (!(error instanceof ProcoreTransientError)) {
          // Invalid responses, other OAuth errors: nothing to retry.
          // A 2xx with an unusable body may still have consumed the token.
          await this.recordFailure(
            writer,
            record,
            error,
            outcomeUnknown || isUnusableSuccess(error),
          );
          return { kind: 'failed', error, attempts: attempt + 1 };
        }
        outcomeUnknown ||= error.requestSent;
        const delay =
          attempt < retries ? retryDelayMs(this.options.http, attempt, error) : undefined;
        if (delay === undefined) {
          await this.recordFailure(writer, record, error, outcomeUnknown);
          return { kind: 'failed', error, attempts: attempt + 1 };
        }
        // No re-read is needed before retrying: we hold the row lock, so no other caller or
        // instance can have refreshed this row meanwhile. Retrying may end in invalid_grant if
        // Procore did process the lost call; that is classified as refresh_response_lost above.
        await sleep(delay);
      }
    }
  }

  /** Step 4: both tokens, expiry and version in one write, inside the locked transaction. */
  private async persist(
    record: ProcoreTokenRecord,
    writer: LockedTokenWriter,
    response: ProcoreTokenResponse,
    previousRefreshToken: string,
    startedAt: number,
  ): Promise<Outcome> {
    // A response without a refresh token keeps the old one (re-encrypted with the current key).
    const sealed = sealTokens(
      this.cipher,
      record.ownerId,
      response.access_token,
      response.refresh_token ?? previousRefreshToken,
    );
    const expiresAt = new Date(startedAt + response.expires_in * 1000);
    const version = record.version + 1;
    await writer.update({
      ...sealed,
      expiresAt,
      tokenLifetimeSeconds: Math.round(response.expires_in),
      version,
      lastRefreshedAt: new Date(),
      failureCount: 0,
      lastErrorCode: null,
      lastErrorAt: null,
    });
    return { kind: 'refreshed', issued: { token: response.access_token, expiresAt }, version };
  }

  private async requireReauthorization(
    writer: LockedTokenWriter,
    record: ProcoreTokenRecord,
    cause: string,
  ): Promise<Outcome> {
    // Never a delete: the row keeps its history; the dead tokens are erased.
    await writer.update({
      status: 'reauthorization_required',
      accessToken: null,
      refreshToken: null,
      keyId: null,
      lastErrorCode: cause,
      lastErrorAt: new Date(),
      failureCount: record.failureCount + 1,
    });
    return { kind: 'reauthorization', cause };
  }

  private async recordFailure(
    writer: LockedTokenWriter,
    record: ProcoreTokenRecord,
    error: unknown,
    outcomeUnknown: boolean,
  ): Promise<void> {
    await writer.update({
      failureCount: record.failureCount + 1,
      lastErrorCode: outcomeUnknown ? OUTCOME_UNKNOWN : errorCodeOf(error),
      lastErrorAt: new Date(),
    });
  }

  /** After commit: publish the outcome (cache, events) and answer the caller. */
  private settle(
    ownerId: string,
    trigger: ProcoreRefreshTrigger,
    outcome: Outcome,
  ): IssuedAccessToken {
    const at = new Date();
    switch (outcome.kind) {
      case 'fresh':
        return { ...outcome.issued, refreshed: false };
      case 'refreshed':
        this.events.emit({
          type: ProcoreAuthEventType.TokenRefreshed,
          ownerId,
          at,
          expiresAt: outcome.issued.expiresAt,
          version: outcome.version,
          trigger,
        });
        return { ...outcome.issued, refreshed: true };
      case 'reauthorization':
        this.events.emit({
          type: ProcoreAuthEventType.ReauthorizationRequired,
          ownerId,
          at,
          cause: outcome.cause,
        });
        throw new ProcoreReauthorizationRequiredError(
          ownerId,
          'reauthorization_required',
          outcome.cause,
        );
      case 'failed':
        this.events.emit({
          type: ProcoreAuthEventType.RefreshFailed,
          ownerId,
          at,
          errorCode: errorCodeOf(outcome.error),
          attempts: outcome.attempts,
          trigger,
        });
        if (outcome.error instanceof ProcoreTransientError) {
          throw new ProcoreTokenRefreshError(ownerId, outcome.attempts, { cause: outcome.error });
        }
        throw outcome.error;
    }
  }

  /** The stored access token of a row already known to be fresh. */
  issued(record: ProcoreTokenRecord): IssuedAccessToken {
    return {
      token: openAccessToken(this.cipher, record) as string,
      expiresAt: record.expiresAt as Date,
    };
  }
}

/** Throws the reauthorization error a row's state calls for; returns for active rows. */
export function assertConnected(
  ownerId: string,
  record: ProcoreTokenRecord | null,
  environment: string,
): asserts record is ProcoreTokenRecord {
  if (!record)
    throw new ProcoreReauthorizationRequiredError(ownerId, 'not_connected', 'no_connection');
  if (record.environment !== environment) {
    // Tokens never cross environments: a sandbox grant is useless (and must not be sent) to production.
    throw new ProcoreReauthorizationRequiredError(ownerId, 'not_connected', 'other_environment');
  }
  if (record.status === 'revoked')
    throw new ProcoreReauthorizationRequiredError(ownerId, 'not_connected', 'revoked');
  if (record.status !== 'active') {
    throw new ProcoreReauthorizationRequiredError(
      ownerId,
      'reauthorization_required',
      record.lastErrorCode ?? record.status,
    );
  }
}

function errorCodeOf(error: unknown): string {
  if (error instanceof ProcoreTransientError && error.status) return `http_${error.status}`;
  if (error instanceof ProcoreOAuthError) return error.error;
  const code = (error as { code?: unknown })?.code;
  return typeof code === 'string' ? code : 'unknown_error';
}

function isUnusableSuccess(error: unknown): boolean {
  const status = (error as { status?: unknown })?.status;
  return typeof status === 'number' && status >= 200 && status < 300;
}
