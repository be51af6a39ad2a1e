import { Inject, Injectable, Logger } from '@nestjs/common';
import type { ResolvedProcoreAuthOptions } from '../config/resolve-procore-auth-options.js';
import { openAccessToken, openRefreshToken, sealTokens } from '../crypto/connection-secrets.js';
import type { TokenCipher } from '../crypto/token-cipher.js';
import { ProcoreAuthError } from '../errors/procore-auth.error.js';
import { ProcoreConfigurationError } from '../errors/procore-configuration.error.js';
import { ProcoreOAuthError } from '../errors/procore-oauth.error.js';
import { ProcoreReauthorizationRequiredError } from '../errors/procore-reauthorization-required.error.js';
import { ProcoreShutdownError } from '../errors/procore-shutdown.error.js';
import { ProcoreTokenPersistError } from '../errors/procore-storage.error.js';
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
  type ProcoreTokenPatch,
  type ProcoreTokenRecord,
} from '../storage/procore-token.store.js';
import { asProcoreError, redactDriverError, storageErrorCode } from '../storage/storage-errors.js';
import { noteLogged } from '../logging/procore-error-log.js';
import { ProcoreMetrics } from '../metrics/procore-metrics.js';
import { ProcoreInFlightOperations } from './in-flight-operations.js';

/** Recorded when a refresh call's outcome is unknown (5xx/timeout/reset after it was sent). */
export const OUTCOME_UNKNOWN = 'refresh_outcome_unknown';
/** Recorded when Procore rotated the token but the new one could not be stored. */
export const PERSIST_FAILED = 'refresh_persist_failed';
/** Recorded when the refresh token was consumed by a call whose response never reached us. */
export const RESPONSE_LOST = 'refresh_response_lost';

/**
 * Recorded when Procore's answer to a refresh had no new refresh token: the old one is kept (as
 * the SPEC says), but Procore consumed it with that call, so its next refusal is not the user's.
 */
export const NOT_ROTATED = 'refresh_token_not_rotated';

/** Error codes meaning "the stored refresh token may already be consumed at Procore". */
export const MAYBE_CONSUMED: ReadonlySet<string | null> = new Set<string | null>([
  OUTCOME_UNKNOWN,
  PERSIST_FAILED,
  NOT_ROTATED,
]);

/** Delays between the attempts to save rotated tokens after the locked transaction failed. */
const SALVAGE_DELAYS_MS = [0, 250, 1_000];

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
  | { kind: 'failed'; error: ProcoreAuthError; attempts: number };

/** One locked attempt either settles the outcome or asks for another one after a pause. */
type Attempt = Outcome | { kind: 'retry'; delayMs: number; version: number; error: unknown };

/** Tokens Procore issued in an attempt, kept until they are known to be stored. */
interface Rotation {
  record: ProcoreTokenRecord;
  response: ProcoreTokenResponse;
  patch: ProcoreTokenPatch;
  expiresAt: Date;
}

/**
 * The refresh protocol: exactly one refresh per token generation, however many callers and
 * instances race, and a rotated refresh token is stored before anyone uses the new access token.
 *
 * 1. The caller (ProcoreTokenService) already served cache hits and joined the in-process
 *    single-flight for the owner, so one call per owner per instance gets here.
 * 2. Lock the owner's row (`SELECT ... FOR UPDATE`) in a transaction and read it again: another
 *    instance may have refreshed while we waited; then its token is returned.
 * 3. Only if the row is still stale, call Procore's token endpoint ONCE with its refresh token.
 * 4. Write both new tokens (encrypted), the expiry (request start + `expires_in`) and the bumped
 *    version through the locked transaction, commit, and only then hand out the access token.
 *
 * The row lock is held across one HTTP round trip (at most `http.timeoutMs`, which bootstrap
 * checks is below `lockTimeoutMs`), never across a retry pause: a transient failure is recorded
 * and committed, the lock released, and the next attempt starts again at step 2. Storage errors
 * are never read as Procore's answer: rotated tokens whose transaction failed are saved again in a
 * fresh statement guarded by the row's version (see `salvage`).
 */
@Injectable()
export class ProcoreTokenRefresher {
  private readonly logger = new Logger('ProcoreAuth');
  /**
   * Owners whose stored refresh token this instance knows may be consumed, with the row version it
   * applies to: the database mark (`last_error_code`) may not have been writable.
   */
  private readonly maybeConsumed = new Map<string, number>();
  /**
   * Per-owner queue inside this process: a forced `refresh()` and a `getAccessToken()` refresh (two
   * single-flights) never run the protocol for one owner at the same time. The row lock does that
   * across instances, but it is lost with its session (a terminated backend) while a rotated token
   * is still being saved; this queue keeps this instance from sending the consumed token meanwhile.
   */
  private readonly queues = new Map<string, Promise<unknown>>();

  constructor(
    @Inject(PROCORE_AUTH_OPTIONS) private readonly options: ResolvedProcoreAuthOptions,
    @Inject(PROCORE_TOKEN_CIPHER) private readonly cipher: TokenCipher,
    private readonly store: ProcoreTokenStore,
    private readonly client: ProcoreOAuthClient,
    private readonly events: ProcoreAuthEvents,
    private readonly inFlight: ProcoreInFlightOperations,
    private readonly metrics: ProcoreMetrics,
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
   * has `marginMs` or less left (a function: the margin depends on the row, as the scheduler's
   * does). With `seenVersion`, refreshes unless the row moved past that version meanwhile (a forced
   * refresh that someone else already did counts as done). Tracked for shutdown.
   */
  refresh(
    ownerId: string,
    trigger: ProcoreRefreshTrigger,
    marginMs: number | ((record: ProcoreTokenRecord) => number),
    seenVersion?: number,
  ): Promise<IssuedAccessToken> {
    return this.inFlight.run('a token refresh', async () => {
      const startedAt = performance.now();
      let outcome: Outcome;
      try {
        outcome = await this.queued(ownerId, () => this.attempts(ownerId, marginMs, seenVersion));
      } catch (error) {
        // The row's state (not connected, revoked) is an answer, not a failed refresh.
        if (error instanceof ProcoreReauthorizationRequiredError) throw error;
        outcome = {
          kind: 'failed',
          error: asProcoreError(error, ownerId, 'refreshing'),
          attempts: 0,
        };
      }
      return this.settle(ownerId, trigger, outcome, startedAt);
    });
  }

  /** Runs `work` after the owner's previous protocol run on this instance has finished. */
  private async queued<T>(ownerId: string, work: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(ownerId);
    const run = (previous ?? Promise.resolve()).catch(() => undefined).then(work);
    this.queues.set(ownerId, run);
    try {
      return await run;
    } finally {
      if (this.queues.get(ownerId) === run) this.queues.delete(ownerId);
    }
  }

  /** Runs locked attempts until one settles; pauses between them hold no lock and no transaction. */
  private async attempts(
    ownerId: string,
    marginMs: number | ((record: ProcoreTokenRecord) => number),
    seenVersion: number | undefined,
  ): Promise<Outcome> {
    let baseline = seenVersion;
    for (let attempt = 0; ; attempt++) {
      const result = await this.attempt(ownerId, marginMs, baseline, attempt);
      if (result.kind !== 'retry') return result;
      // From now on any new version means someone else refreshed (e.g. another instance while we paused).
      baseline ??= result.version;
      try {
        await this.inFlight.pause(result.delayMs, 'a refresh retry');
      } catch {
        return {
          kind: 'failed',
          error: asProcoreError(result.error, ownerId, ''),
          attempts: attempt + 1,
        };
      }
    }
  }

  /** Steps 2 to 4 once: one transaction, at most one call to Procore. */
  private async attempt(
    ownerId: string,
    marginMs: number | ((record: ProcoreTokenRecord) => number),
    baseline: number | undefined,
    attempt: number,
  ): Promise<Attempt> {
    let rotation: Rotation | undefined;
    const lockAskedAt = performance.now();
    try {
      return await this.store.withLock(
        ownerId,
        this.options.lockTimeoutMs,
        async (record, writer) => {
          this.metrics.lockWait(performance.now() - lockAskedAt);
          assertConnected(ownerId, record, this.options.environment);
          const margin = typeof marginMs === 'function' ? marginMs(record) : marginMs;
          const refreshedMeanwhile =
            baseline === undefined ? this.isFresh(record, margin) : record.version !== baseline;
          if (refreshedMeanwhile && this.isFresh(record, 0)) {
            return { kind: 'fresh', issued: this.issued(record) };
          }
          const refreshToken = openRefreshToken(this.cipher, record);
          if (!refreshToken) return this.requireReauthorization(writer, record, 'no_refresh_token');
          // During shutdown, only a call that can finish before the drain gives up may start.
          if (!this.inFlight.hasTimeFor(this.options.http.timeoutMs + 1_000)) {
            throw new ProcoreShutdownError('a token refresh');
          }
          const startedAt = Date.now();
          let response: ProcoreTokenResponse;
          try {
            response = await this.client.refresh(refreshToken);
          } catch (error) {
            return this.classify(error, record, writer, attempt);
          }
          // From here on the old refresh token is consumed and the new one exists only in memory:
          // any failure is a storage failure, handled by salvage() below.
          rotation = this.rotation(record, response, refreshToken, startedAt);
          await writer.update(rotation.patch);
          return this.refreshed(rotation);
        },
      );
    } catch (error) {
      if (rotation) return this.salvage(ownerId, rotation, error, attempt);
      throw error;
    }
  }

  /** Classifies a failed token call (inside the transaction that holds the lock). */
  private async classify(
    error: unknown,
    record: ProcoreTokenRecord,
    writer: LockedTokenWriter,
    attempt: number,
  ): Promise<Attempt> {
    // Set once a call may have reached Procore: its refresh token may be consumed already.
    let maybeConsumed =
      MAYBE_CONSUMED.has(record.lastErrorCode) ||
      this.maybeConsumed.get(record.ownerId) === record.version;
    if (error instanceof ProcoreOAuthError && error.error === 'invalid_grant') {
      // Procore no longer honours this refresh token. If an earlier call's answer was lost, that
      // call consumed it: say so, it tells operators it was not the user who revoked.
      return this.requireReauthorization(
        writer,
        record,
        maybeConsumed ? RESPONSE_LOST : 'invalid_grant',
      );
    }
    if (error instanceof ProcoreConfigurationError) {
      // invalid_client: the app's credentials are wrong, not the user's grant. Leave the row as it is.
      return { kind: 'failed', error, attempts: attempt + 1 };
    }
    const failure = asProcoreError(error, record.ownerId, 'calling Procore');
    if (!(error instanceof ProcoreTransientError)) {
      // Invalid responses, other OAuth errors: nothing to retry. Procore consumes the refresh token
      // on any call it answers ("successful or not"), so an answered OAuth error or a 2xx with an
      // unusable body leaves it maybe consumed (only invalid_client is refused before that).
      maybeConsumed ||= isUnusableSuccess(error) || error instanceof ProcoreOAuthError;
      await this.recordFailure(writer, record, error, maybeConsumed);
      return { kind: 'failed', error: failure, attempts: attempt + 1 };
    }
    maybeConsumed ||= error.requestSent;
    await this.recordFailure(writer, record, error, maybeConsumed);
    const delayMs =
      attempt < this.options.http.retries
        ? retryDelayMs(this.options.http, attempt, error)
        : undefined;
    if (delayMs === undefined) return { kind: 'failed', error: failure, attempts: attempt + 1 };
    // The next attempt re-reads the row under the lock: another instance may have succeeded
    // meanwhile, and a retry that ends in invalid_grant after a lost answer is classified above.
    return { kind: 'retry', delayMs, version: record.version, error };
  }

  /** Step 4's write: both tokens, expiry and version. */
  private rotation(
    record: ProcoreTokenRecord,
    response: ProcoreTokenResponse,
    previousRefreshToken: string,
    startedAt: number,
  ): Rotation {
    // A response without a refresh token keeps the old one (re-encrypted with the current key).
    const sealed = sealTokens(
      this.cipher,
      record.ownerId,
      response.access_token,
      response.refresh_token ?? previousRefreshToken,
    );
    const expiresAt = new Date(startedAt + response.expires_in * 1000);
    return {
      record,
      response,
      expiresAt,
      patch: {
        ...sealed,
        expiresAt,
        tokenLifetimeSeconds: Math.round(response.expires_in),
        version: record.version + 1,
        lastRefreshedAt: new Date(),
        failureCount: 0,
        lastErrorCode: response.refresh_token ? null : NOT_ROTATED,
        lastErrorAt: response.refresh_token ? null : new Date(),
      },
    };
  }

  private refreshed(rotation: Rotation): Outcome {
    this.maybeConsumed.delete(rotation.record.ownerId);
    return {
      kind: 'refreshed',
      issued: { token: rotation.response.access_token, expiresAt: rotation.expiresAt },
      version: rotation.record.version + 1,
    };
  }

  /**
   * The transaction that held the lock failed after Procore rotated the token (backend terminated,
   * idle-in-transaction or statement timeout, commit lost). The old refresh token is consumed, so
   * nobody else can have refreshed: save the rotation again in a fresh statement guarded by the
   * row's version, a few times. If the version moved, the first commit may have landed after all:
   * check that the stored token is ours. Only if all that fails is the rotation lost; then the row
   * is marked (when the database allows) so the next `invalid_grant` reads `refresh_response_lost`.
   */
  private async salvage(
    ownerId: string,
    rotation: Rotation,
    cause: unknown,
    attempt: number,
  ): Promise<Outcome> {
    const version = rotation.record.version;
    let lastError = cause;
    for (const delayMs of SALVAGE_DELAYS_MS) {
      if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
      try {
        // The rotated tokens are the live grant: whatever another instance concluded meanwhile
        // (it may have sent the consumed token while our lock was lost), the row is active again.
        const patch = { ...rotation.patch, status: 'active' as const };
        if (await this.store.updateIfVersion(ownerId, version, patch)) {
          this.logger.warn(
            `Stored the rotated Procore token of owner "${ownerId}" on a second try after a storage error (${storageErrorCode(cause)}).`,
          );
          return this.refreshed(rotation);
        }
        const current = await this.store.find(ownerId);
        if (current && this.holdsRotation(current, rotation)) return this.refreshed(rotation);
        lastError = Object.assign(new Error('the connection was replaced or revoked meanwhile'), {
          code: 'connection_replaced',
        });
        break;
      } catch (error) {
        lastError = error;
      }
    }
    this.rememberMaybeConsumed(ownerId, version);
    await this.store
      .updateIfVersion(ownerId, version, {
        lastErrorCode: PERSIST_FAILED,
        lastErrorAt: new Date(),
        failureCount: rotation.record.failureCount + 1,
      })
      .catch(() => false);
    const code = storageErrorCode(lastError);
    this.logger.error(
      `Procore rotated the refresh token of owner "${ownerId}" but it could not be stored (${code}): the owner will have to reconnect if the next refresh is refused (recorded as ${RESPONSE_LOST}).`,
    );
    const error = new ProcoreTokenPersistError(
      ownerId,
      `The rotated Procore token of owner "${ownerId}" could not be stored (${code}).`,
      { cause: redactDriverError(lastError) },
    );
    return { kind: 'failed', error, attempts: attempt + 1 };
  }

  /** Bounded: the oldest entries go first (the database mark is the durable copy). */
  private rememberMaybeConsumed(ownerId: string, version: number): void {
    this.maybeConsumed.delete(ownerId);
    this.maybeConsumed.set(ownerId, version);
    if (this.maybeConsumed.size > 10_000) {
      this.maybeConsumed.delete(this.maybeConsumed.keys().next().value as string);
    }
  }

  /** Whether the stored row holds the access token of this rotation (its commit did land). */
  private holdsRotation(record: ProcoreTokenRecord, rotation: Rotation): boolean {
    try {
      return openAccessToken(this.cipher, record) === rotation.response.access_token;
    } catch {
      return false;
    }
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
    this.maybeConsumed.delete(record.ownerId);
    return { kind: 'reauthorization', cause };
  }

  private async recordFailure(
    writer: LockedTokenWriter,
    record: ProcoreTokenRecord,
    error: unknown,
    maybeConsumed: boolean,
  ): Promise<void> {
    // Remembered here too: if this write fails, the next attempt must still know.
    if (maybeConsumed) this.rememberMaybeConsumed(record.ownerId, record.version);
    await writer.update({
      failureCount: record.failureCount + 1,
      lastErrorCode: maybeConsumed ? OUTCOME_UNKNOWN : errorCodeOf(error),
      lastErrorAt: new Date(),
    });
  }

  /** After commit: publish the outcome (log, events) and answer the caller. */
  private settle(
    ownerId: string,
    trigger: ProcoreRefreshTrigger,
    outcome: Outcome,
    startedAt: number,
  ): IssuedAccessToken {
    const at = new Date();
    const durationMs = performance.now() - startedAt;
    switch (outcome.kind) {
      case 'fresh':
        this.metrics.refresh(trigger, 'fresh', durationMs);
        return { ...outcome.issued, refreshed: false };
      case 'refreshed':
        this.metrics.refresh(trigger, 'refreshed', durationMs);
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
        this.metrics.refresh(trigger, 'reauthorization_required', durationMs);
        this.metrics.reauthorizationRequired(outcome.cause);
        this.logger.warn(
          `Procore connection of owner "${ownerId}" needs reauthorization (${outcome.cause}).`,
        );
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
      case 'failed': {
        const errorCode = errorCodeOf(outcome.error);
        this.metrics.refresh(trigger, 'failed', durationMs, errorCode);
        this.logger.warn(
          `Procore token refresh failed for owner "${ownerId}" (${errorCode}, ${outcome.attempts} attempt(s), trigger ${trigger}).`,
        );
        this.events.emit({
          type: ProcoreAuthEventType.RefreshFailed,
          ownerId,
          at,
          errorCode,
          attempts: outcome.attempts,
          trigger,
        });
        // Logged above with its cause: a 5xx answered for it does not log it again.
        noteLogged(outcome.error);
        if (outcome.error instanceof ProcoreTransientError) {
          throw new ProcoreTokenRefreshError(ownerId, outcome.attempts, { cause: outcome.error });
        }
        throw outcome.error;
      }
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

/** The stable code of a failure, for `last_error_code`, events and logs (never free text). */
export function errorCodeOf(error: unknown): string {
  if (error instanceof ProcoreTransientError && error.status) return `http_${error.status}`;
  if (error instanceof ProcoreOAuthError) return error.error;
  const code = (error as { code?: unknown })?.code;
  return typeof code === 'string' && /^[A-Za-z0-9_]{1,64}$/.test(code) ? code : 'unknown_error';
}

function isUnusableSuccess(error: unknown): boolean {
  const status = (error as { status?: unknown })?.status;
  return typeof status === 'number' && status >= 200 && status < 300;
}
