import { Inject, Injectable } from '@nestjs/common';
import { procoreServiceAccountEnv } from '../config/procore-env.js';
import type { ResolvedProcoreAuthOptions } from '../config/resolve-procore-auth-options.js';
import { ProcoreConfigurationError } from '../errors/procore-configuration.error.js';
import { ProcoreInvalidResponseError } from '../errors/procore-invalid-response.error.js';
import { mayShowProviderText } from '../errors/provider-text.js';
import { ProcoreOAuthError } from '../errors/procore-oauth.error.js';
import { ProcoreTimeoutError } from '../errors/procore-timeout.error.js';
import { ProcoreTransientError } from '../errors/procore-transient.error.js';
import type { ProcoreTokenResponse } from '../interfaces/procore-token-response.interface.js';
import { PROCORE_AUTH_OPTIONS } from '../procore-auth.constants.js';
import { NOT_SENT_CODES, withRetries } from './retry-policy.js';
import { parseTokenResponse } from './token-response.parser.js';

type Endpoint = '/oauth/token' | '/oauth/revoke';

/** The credentials `clientCredentials()` sends; `name` is the service account's configured name. */
export interface ProcoreClientCredentialsAccount {
  name?: string;
  clientId: string;
  clientSecret: string;
}

interface HttpAnswer {
  status: number;
  contentType: string;
  retryAfterMs: number | undefined;
  body: string;
}

function errorCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current && typeof current === 'object'; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

function parseRetryAfter(value: string | null): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/**
 * The OAuth `error` of an answer as a code safe to put in messages, the `last_error_code` column
 * (varchar 64) and event payloads: RFC 6749 codes are lowercase words joined by "_"; anything
 * else is `unknown_error`. Undefined when the answer has no `error` string at all.
 */
function oauthErrorCode(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  return /^[a-z_]{1,64}$/.test(value) ? value : 'unknown_error';
}

/** An OAuth error description is shown to operators only when it cannot carry a token. */
function safeDescription(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  return mayShowProviderText(value) ? value : undefined;
}

/**
 * HTTP client of Procore's login host: the token endpoint (authorization code, refresh token,
 * client credentials) and revocation, with Node's `fetch`. Every answer is classified into a typed
 * error so the refresh protocol can decide what is safe: see `ProcoreTransientError.requestSent`.
 * It does exactly one attempt per `refresh()` call: retrying a refresh is the protocol's decision.
 */
@Injectable()
export class ProcoreOAuthClient {
  constructor(@Inject(PROCORE_AUTH_OPTIONS) private readonly options: ResolvedProcoreAuthOptions) {}

  /** Procore's authorize URL for a `state` (and PKCE challenge). */
  authorizeUrl(state: string, codeChallenge?: string): string {
    const url = new URL(`${this.options.authBaseUrl}/oauth/authorize`);
    url.searchParams.set('response_type', 'code');
    url.searchParams.set('client_id', this.options.clientId);
    url.searchParams.set('redirect_uri', this.options.redirectUri);
    url.searchParams.set('state', state);
    if (codeChallenge) {
      url.searchParams.set('code_challenge', codeChallenge);
      url.searchParams.set('code_challenge_method', 'S256');
    }
    return url.toString();
  }

  /**
   * Exchanges an authorization code. Codes are single-use too, so only failures that prove the
   * request was never sent are retried.
   */
  exchangeCode(code: string, codeVerifier?: string): Promise<ProcoreTokenResponse> {
    const form: Record<string, string> = {
      grant_type: 'authorization_code',
      code,
      redirect_uri: this.options.redirectUri,
    };
    if (codeVerifier) form.code_verifier = codeVerifier;
    return withRetries(this.options.http, isNotSent, () => this.requestToken(form));
  }

  /** One refresh call. Procore consumes the refresh token whatever the outcome. */
  refresh(refreshToken: string): Promise<ProcoreTokenResponse> {
    return this.requestToken({
      grant_type: 'refresh_token',
      refresh_token: refreshToken,
      redirect_uri: this.options.redirectUri,
    });
  }

  /**
   * A client-credentials token for `account` (a named service account) or, without one, for the
   * app's own credentials. Repeating this call is harmless, so every transient failure is retried.
   * A named account whose credentials are refused (`invalid_client` / 401) is a
   * `ProcoreConfigurationError` naming the account and its env variables (never the secret).
   */
  clientCredentials(account?: ProcoreClientCredentialsAccount): Promise<ProcoreTokenResponse> {
    return withRetries(this.options.http, isTransient, async () => {
      const answer = await this.post('/oauth/token', { grant_type: 'client_credentials' }, account);
      if (account?.name !== undefined) this.throwIfAccountRejected(account.name, answer);
      this.throwUnlessOk('/oauth/token', answer);
      return this.parseTokenResponse(answer);
    });
  }

  /**
   * Procore refuses a service account's credentials once its secret was regenerated (which also
   * revokes its tokens, seed 002), so that is named as the likely cause.
   */
  private throwIfAccountRejected(name: string, answer: HttpAnswer): void {
    if (answer.status === 429 || answer.status >= 500 || answer.status < 400) return;
    const oauthError = oauthErrorCode(this.tryJson(answer.body)?.error);
    if (oauthError !== 'invalid_client' && answer.status !== 401) return;
    const env = procoreServiceAccountEnv(name);
    throw new ProcoreConfigurationError(
      `Procore /oauth/token rejected the client credentials of service account "${name}" (${oauthError ?? answer.status}): its client secret was probably regenerated in Procore's Developer Portal (or by a company admin), which also revokes its tokens. Set the new secret in ${env.clientSecret} (check ${env.clientId} too) or in serviceAccounts.${name}.clientSecret; the environment is ${this.options.environment}.`,
    );
  }

  /**
   * Revokes a token with one call; Procore revokes the access AND refresh token of the grant, and
   * answers 200 for unknown tokens. Retrying is the caller's decision (it may hold a row lock).
   */
  async revoke(token: string): Promise<void> {
    const answer = await this.post('/oauth/revoke', { token });
    this.throwUnlessOk('/oauth/revoke', answer);
  }

  private async requestToken(form: Record<string, string>): Promise<ProcoreTokenResponse> {
    const answer = await this.post('/oauth/token', form);
    this.throwUnlessOk('/oauth/token', answer);
    return this.parseTokenResponse(answer);
  }

  private async post(
    endpoint: Endpoint,
    form: Record<string, string>,
    credentials: { clientId: string; clientSecret: string } = this.options,
  ): Promise<HttpAnswer> {
    const { timeoutMs } = this.options.http;
    // Credentials go in the form body, as Procore expects (not HTTP Basic). A string body is sent
    // in one write, which avoids a Nagle/delayed-ACK stall on keep-alive connections.
    const body = new URLSearchParams({
      ...form,
      client_id: credentials.clientId,
      client_secret: credentials.clientSecret,
    }).toString();
    const signal = AbortSignal.timeout(timeoutMs);
    try {
      const response = await fetch(`${this.options.authBaseUrl}${endpoint}`, {
        method: 'POST',
        headers: {
          accept: 'application/json',
          'content-type': 'application/x-www-form-urlencoded',
        },
        body,
        redirect: 'manual',
        signal,
      });
      return {
        status: response.status,
        contentType: response.headers.get('content-type') ?? '',
        retryAfterMs: parseRetryAfter(response.headers.get('retry-after')),
        body: await this.readBody(endpoint, response),
      };
    } catch (error) {
      if (error instanceof ProcoreInvalidResponseError) throw error;
      if (signal.aborted) throw new ProcoreTimeoutError(endpoint, timeoutMs);
      const code = errorCode(error);
      const sent = !NOT_SENT_CODES.has(code ?? '');
      throw new ProcoreTransientError(
        `Procore ${endpoint} could not be reached (${code ?? 'network error'}).`,
        sent,
        undefined,
        undefined,
        { cause: error },
      );
    }
  }

  /** Reads at most `maxResponseBytes`, so a misbehaving proxy cannot exhaust memory. */
  private async readBody(endpoint: Endpoint, response: Response): Promise<string> {
    const limit = this.options.http.maxResponseBytes;
    const declared = Number(response.headers.get('content-length') ?? NaN);
    if (declared > limit) {
      await response.body?.cancel();
      throw this.tooLarge(endpoint, response.status);
    }
    if (!response.body) return '';
    const chunks: Uint8Array[] = [];
    let size = 0;
    for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
      size += chunk.byteLength;
      if (size > limit) {
        throw this.tooLarge(endpoint, response.status);
      }
      chunks.push(chunk);
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  private tooLarge(endpoint: Endpoint, status: number): ProcoreInvalidResponseError {
    return new ProcoreInvalidResponseError(
      endpoint,
      status,
      'too_large',
      `the body exceeds ${this.options.http.maxResponseBytes} bytes (http.maxResponseBytes)`,
    );
  }

  private throwUnlessOk(endpoint: Endpoint, answer: HttpAnswer): void {
    if (answer.status >= 200 && answer.status < 300) return;
    if (answer.status === 429 || answer.status >= 500) {
      throw new ProcoreTransientError(
        `Procore ${endpoint} answered ${answer.status}.`,
        true,
        answer.status,
        answer.retryAfterMs,
      );
    }
    const json = this.tryJson(answer.body);
    const oauthError = oauthErrorCode(json?.error);
    if (oauthError === 'invalid_client' || answer.status === 401) {
      throw new ProcoreConfigurationError(
        `Procore ${endpoint} rejected the app's client credentials (${oauthError ?? answer.status}): check PROCORE_CLIENT_ID / PROCORE_CLIENT_SECRET and the environment (${this.options.environment}).`,
      );
    }
    if (!oauthError) {
      throw new ProcoreInvalidResponseError(
        endpoint,
        answer.status,
        this.looksLikeHtml(answer) ? 'html' : 'not_json',
        'expected a JSON OAuth error',
      );
    }
    throw new ProcoreOAuthError(
      answer.status,
      oauthError,
      endpoint,
      safeDescription(json?.error_description),
    );
  }

  private parseTokenResponse(answer: HttpAnswer): ProcoreTokenResponse {
    const endpoint = '/oauth/token';
    if (this.looksLikeHtml(answer)) {
      throw new ProcoreInvalidResponseError(
        endpoint,
        answer.status,
        'html',
        'an HTML page instead of JSON',
      );
    }
    const json = this.tryJson(answer.body);
    // Procore's own created_at is not used (the expiry counts from when the request was sent), so
    // a skewed clock there must not discard an answer whose refresh token is already rotated.
    if (json) delete json.created_at;
    return parseTokenResponse(json, endpoint, answer.status);
  }

  private looksLikeHtml(answer: HttpAnswer): boolean {
    return answer.contentType.includes('text/html') || /^\s*</.test(answer.body);
  }

  private tryJson(body: string): Record<string, unknown> | undefined {
    try {
      const value: unknown = JSON.parse(body);
      return value && typeof value === 'object' && !Array.isArray(value)
        ? (value as Record<string, unknown>)
        : undefined;
    } catch {
      return undefined;
    }
  }
}

/** The request provably never reached Procore. */
export function isNotSent(error: unknown): boolean {
  return error instanceof ProcoreTransientError && !error.requestSent;
}

/** Any failure that may pass on its own (5xx, 429, timeout, reset, refused). */
export function isTransient(error: unknown): boolean {
  return error instanceof ProcoreTransientError;
}
