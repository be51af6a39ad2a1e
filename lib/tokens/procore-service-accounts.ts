import { Inject, Injectable } from '@nestjs/common';
import { PROCORE_ENV_VARIABLES } from '../config/procore-env.js';
import type { ResolvedProcoreAuthOptions } from '../config/resolve-procore-auth-options.js';
import { ProcoreConfigurationError } from '../errors/procore-configuration.error.js';
import {
  ProcoreOAuthClient,
  type ProcoreClientCredentialsAccount,
} from '../oauth/procore-oauth.client.js';
import { PROCORE_AUTH_OPTIONS } from '../procore-auth.constants.js';
import type { IssuedAccessToken } from '../refresh/procore-token.refresher.js';
import { SingleFlight } from './single-flight.js';

/**
 * Cache key of the app's own credentials. Configured names match `^[A-Za-z0-9_-]{1,64}$`, so the
 * empty string never collides with one.
 */
const APP_ACCOUNT = '';

/**
 * Client-credentials tokens of the app's own credentials and of every named service account
 * (`serviceAccounts` option). Each account has its own cached token and its own single-flight, so
 * one account's slow or failing token endpoint call never holds up another's. Nothing is stored:
 * a client-credentials token can always be fetched again. Internal: apps call
 * `ProcoreTokenService.getClientCredentialsToken(name?)` or `@ProcoreToken({ serviceAccount })`.
 */
@Injectable()
export class ProcoreServiceAccounts {
  private readonly accounts: ReadonlyMap<string, ProcoreClientCredentialsAccount>;
  private readonly tokens = new Map<string, IssuedAccessToken>();
  private readonly fetches = new SingleFlight<IssuedAccessToken>();

  constructor(
    @Inject(PROCORE_AUTH_OPTIONS) private readonly options: ResolvedProcoreAuthOptions,
    private readonly client: ProcoreOAuthClient,
  ) {
    this.accounts = new Map(
      Object.entries(options.serviceAccounts).map(([name, credentials]) => [
        name,
        { name, ...credentials },
      ]),
    );
  }

  /** The configured service-account names (the app's own credentials are not listed). */
  names(): string[] {
    return [...this.accounts.keys()];
  }

  /**
   * A client-credentials access token for the named account (`undefined`: the app's own
   * credentials), served from memory until `refreshSkewSeconds` before it expires. Concurrent
   * callers of one account share one token request. Throws `ProcoreConfigurationError` for a name
   * that is not configured, or when Procore refuses the account's credentials.
   */
  async getToken(name?: string): Promise<string> {
    const key = this.keyOf(name);
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt.getTime() - Date.now() > this.skewMs) return cached.token;
    const issued = await this.fetches.run(key, () => this.fetch(key));
    return issued.token;
  }

  /**
   * Drops the account's cached token, but only while it is still `rejectedToken` (the one Procore
   * just answered 401 to): when many callers report the same token, the first drop makes the next
   * `getToken()` fetch once and the others change nothing; a caller reporting an older token
   * never drops a newer one.
   */
  invalidate(name: string | undefined, rejectedToken: string): void {
    const key = this.keyOf(name);
    if (this.tokens.get(key)?.token === rejectedToken) this.tokens.delete(key);
  }

  private get skewMs(): number {
    return this.options.refreshSkewSeconds * 1000;
  }

  /** The cache key of a name, after checking that it is configured. */
  private keyOf(name: string | undefined): string {
    if (name === undefined) return APP_ACCOUNT;
    if (typeof name === 'string' && this.accounts.has(name)) return name;
    // The name is not a secret, but it may come from anywhere: quoted and cut short.
    throw new ProcoreConfigurationError(
      `Unknown Procore service account ${JSON.stringify(String(name).slice(0, 64))}: configure it in serviceAccounts (${PROCORE_ENV_VARIABLES.serviceAccounts}).`,
    );
  }

  private async fetch(key: string): Promise<IssuedAccessToken> {
    // The expiry counts from when the request was sent, as for user tokens.
    const startedAt = Date.now();
    const response = await this.client.clientCredentials(this.accounts.get(key));
    const issued = {
      token: response.access_token,
      expiresAt: new Date(startedAt + response.expires_in * 1000),
    };
    this.tokens.set(key, issued);
    return issued;
  }
}
