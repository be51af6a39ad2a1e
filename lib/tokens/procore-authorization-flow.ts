import { Inject, Injectable, Logger } from '@nestjs/common';
import { createHash, randomBytes } from 'node:crypto';
import type { ResolvedProcoreAuthOptions } from '../config/resolve-procore-auth-options.js';
import { sealTokens } from '../crypto/connection-secrets.js';
import type { TokenCipher } from '../crypto/token-cipher.js';
import { ProcoreOAuthStateError } from '../errors/procore-oauth-state.error.js';
import { ProcoreAuthEvents, ProcoreAuthEventType } from '../events/procore-auth.events.js';
import type {
  ProcoreAuthorizationRequest,
  ProcoreCallbackResult,
  ProcoreConnection,
} from '../interfaces/procore-connection.interface.js';
import type { ProcoreTokenResponse } from '../interfaces/procore-token-response.interface.js';
import { PROCORE_AUTH_OPTIONS, PROCORE_TOKEN_CIPHER } from '../procore-auth.constants.js';
import { ProcoreInFlightOperations } from '../refresh/in-flight-operations.js';
import { errorCodeOf } from '../refresh/procore-token.refresher.js';
import { ProcoreOAuthStateStore } from '../storage/procore-oauth-state.store.js';
import { ProcoreTokenStore, type ProcoreTokenRecord } from '../storage/procore-token.store.js';
import { asProcoreError } from '../storage/storage-errors.js';
import { normalizeOwner, type ProcoreOwnerId } from './procore-owner-id.js';
import { ProcoreUserTokens, toConnection } from './procore-user-tokens.js';
import { isTransient, ProcoreOAuthClient } from '../oauth/procore-oauth.client.js';
import { retryDelayMs } from '../oauth/retry-policy.js';
import { assertSafeReturnTo } from '../oauth/return-to.js';
import { parseTokenResponse } from '../oauth/token-response.parser.js';

function hashState(state: string): string {
  return createHash('sha256').update(state, 'utf8').digest('hex');
}

/**
 * The authorization-code flow: the one-time `state` and the authorize URL, the callback (state
 * check, code exchange, stored connection) and the import of tokens obtained elsewhere.
 * `ProcoreTokenService` is its public face.
 */
@Injectable()
export class ProcoreAuthorizationFlow {
  private readonly logger = new Logger('ProcoreAuth');

  constructor(
    @Inject(PROCORE_AUTH_OPTIONS) private readonly options: ResolvedProcoreAuthOptions,
    @Inject(PROCORE_TOKEN_CIPHER) private readonly cipher: TokenCipher,
    private readonly store: ProcoreTokenStore,
    private readonly stateStore: ProcoreOAuthStateStore,
    private readonly client: ProcoreOAuthClient,
    private readonly events: ProcoreAuthEvents,
    private readonly inFlight: ProcoreInFlightOperations,
    private readonly userTokens: ProcoreUserTokens,
  ) {}

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
    // The state store is replaceable: its owner id is checked like any other before a token is
    // stored or cached under it (and before the single-use code is spent).
    const recordOwner = normalizeOwner(record.ownerId);
    // Tracked for shutdown: the code is single-use, so an exchange cut off before the tokens are
    // stored would leave a grant at Procore that nobody holds.
    return this.inFlight.run('an authorization callback', async () => {
      const startedAt = Date.now();
      const response = await this.client.exchangeCode(code, verifier);
      const connection = await this.storeTokens(recordOwner, response, startedAt);
      return { connection, returnTo: record.returnTo };
    });
  }

  async importTokens(
    ownerId: ProcoreOwnerId,
    tokenResponse: ProcoreTokenResponse,
  ): Promise<ProcoreConnection> {
    const response = parseTokenResponse(tokenResponse, 'importTokens()');
    const issuedAt = response.created_at !== undefined ? response.created_at * 1000 : Date.now();
    const owner = normalizeOwner(ownerId);
    return this.inFlight.run('an import', () => this.storeTokens(owner, response, issuedAt));
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
    this.userTokens.remember(owner, response.access_token, expiresAt);
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
    const token = this.userTokens.tokenToRevoke(replaced);
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
}
