import { randomUUID } from 'node:crypto';
import { parseJson } from './fake-http.js';
import { constantTimeEqual, epochSeconds, hmacSha256, randomToken } from './fake-procore-crypto.js';
import type { AccessTokenProblem } from './fake-procore-replies.js';
import { reportFakeProcoreSecret } from './fake-procore-secrets.js';
import type { PersistedGrant } from './fake-procore-state-file.js';
import type {
  FakeProcoreAccessTokenClaims,
  FakeProcoreTokenResponse,
  FakeProcoreUser,
} from './fake-procore.types.js';

// What the fake's login host knows: its registered clients, every grant (authorization) with its
// one live refresh token, and the HS256 access tokens it signs and checks. No HTTP here: the
// server's endpoints and its test-facing methods both work through this.

const JWT_ISSUER = 'fake-procore';
const SERVICE_ACCOUNT_SUBJECT = 'service-account';

/** A client the token endpoint accepts: the app's own, or a service account. */
export interface RegisteredClient {
  readonly id: string;
  secret: string;
  /** Bumped by regenerateClientSecret: tokens carrying an older value are dead. */
  generation: number;
  /** Service accounts may only use `grant_type=client_credentials`. */
  readonly serviceAccount: boolean;
  /** The directory user of a service account; undefined for the app's own client. */
  readonly user: FakeProcoreUser | undefined;
}

/** One authorization: the chain of access and refresh tokens that rotation produces from it. */
export interface Grant {
  readonly id: string;
  /** Undefined for client-credentials (service account) grants. */
  readonly user: FakeProcoreUser | undefined;
  /** The one live refresh token of the chain, if any. */
  refreshToken: string | undefined;
  revoked: boolean;
}

export type AccessTokenCheck =
  | { valid: true; grant: Grant; claims: FakeProcoreAccessTokenClaims }
  | { valid: false; reason: AccessTokenProblem };

/** The fake clock and token lifetime, which tests may change at any time. */
export interface FakeProcoreGrantClock {
  /** The fake clock, epoch ms. */
  now(): number;
  /** `expires_in` of access tokens issued now, in seconds. */
  accessTokenTtlSeconds(): number;
}

/** Clients, grants and tokens of one fake server. */
export class FakeProcoreGrants {
  /** The app's own client and every service account, by client id. */
  readonly clients = new Map<string, RegisteredClient>();
  private readonly grants = new Map<string, Grant>();
  /** Live refresh tokens only: consuming or revoking one removes it. */
  private readonly refreshTokens = new Map<string, Grant>();

  constructor(
    /** The app's own client, also in {@link clients}. */
    readonly appClient: RegisteredClient,
    private readonly jwtSecret: Buffer,
    private readonly clock: FakeProcoreGrantClock,
  ) {
    this.clients.set(appClient.id, appClient);
  }

  /** The signing secret, base64url, as the state file keeps it. */
  get signingSecret(): string {
    return this.jwtSecret.toString('base64url');
  }

  /**
   * The app's own client or a service account whose id and secret match; undefined for anything
   * else. Both are compared in constant time.
   */
  authenticateClient(clientId: string, clientSecret: string): RegisteredClient | undefined {
    const client = this.clients.get(clientId) ?? this.appClient;
    const idOk = constantTimeEqual(clientId, client.id);
    const secretOk = constantTimeEqual(clientSecret, client.secret);
    return idOk && secretOk ? client : undefined;
  }

  create(user: FakeProcoreUser | undefined): Grant {
    const grant: Grant = { id: randomUUID(), user, refreshToken: undefined, revoked: false };
    this.grants.set(grant.id, grant);
    return grant;
  }

  /** A new access token and a new refresh token for `grant`, replacing its live refresh token. */
  issueUserTokens(grant: Grant): FakeProcoreTokenResponse {
    const { accessToken, issuedAt } = this.signAccessToken(grant);
    if (grant.refreshToken !== undefined) this.refreshTokens.delete(grant.refreshToken);
    grant.refreshToken = randomToken(32);
    reportFakeProcoreSecret(grant.refreshToken, 'refresh-token');
    this.refreshTokens.set(grant.refreshToken, grant);
    return {
      access_token: accessToken,
      token_type: 'bearer',
      expires_in: this.clock.accessTokenTtlSeconds(),
      refresh_token: grant.refreshToken,
      created_at: issuedAt,
    };
  }

  signAccessToken(
    grant: Grant,
    client: RegisteredClient = this.appClient,
  ): { accessToken: string; issuedAt: number } {
    const issuedAt = epochSeconds(this.clock.now());
    const claims: FakeProcoreAccessTokenClaims = {
      iss: JWT_ISSUER,
      sub: grant.user ? String(grant.user.id) : SERVICE_ACCOUNT_SUBJECT,
      aud: client.id,
      iat: issuedAt,
      exp: issuedAt + this.clock.accessTokenTtlSeconds(),
      jti: randomUUID(),
      grant: grant.id,
    };
    // Only once the secret was regenerated, so tokens look exactly as before until then.
    if (client.generation > 0) claims.sgen = client.generation;
    const unsigned = `${base64UrlJson({ alg: 'HS256', typ: 'JWT' })}.${base64UrlJson(claims)}`;
    const accessToken = `${unsigned}.${hmacSha256(this.jwtSecret, unsigned)}`;
    reportFakeProcoreSecret(accessToken, 'access-token');
    return { accessToken, issuedAt };
  }

  checkAccessToken(token: string | undefined): AccessTokenCheck {
    const claims = token === undefined ? undefined : this.verifyJwt(token);
    const grant = claims && this.grants.get(claims.grant);
    if (!claims || !grant) return { valid: false, reason: 'invalid' };
    if (grant.revoked) return { valid: false, reason: 'revoked' };
    // Issued before the client's secret was regenerated (verifyJwt vouches the client exists).
    if ((claims.sgen ?? 0) !== this.clients.get(claims.aud)?.generation) {
      return { valid: false, reason: 'revoked' };
    }
    if (claims.exp * 1000 <= this.clock.now()) return { valid: false, reason: 'expired' };
    return { valid: true, grant, claims };
  }

  /** Whether `refreshToken` would be accepted now (issued, not yet used, not revoked). */
  isRefreshTokenActive(refreshToken: string): boolean {
    return this.refreshTokens.has(refreshToken);
  }

  /** The grant of a live refresh token, which from now on is used up; undefined for any other token. */
  consumeRefreshToken(refreshToken: string): Grant | undefined {
    const grant = this.refreshTokens.get(refreshToken);
    if (!grant) return undefined;
    this.refreshTokens.delete(refreshToken);
    grant.refreshToken = undefined;
    return grant;
  }

  /** The grant of a live refresh token, or of an access token with a valid signature (even expired). */
  find(token: string): Grant | undefined {
    const byRefreshToken = this.refreshTokens.get(token);
    if (byRefreshToken) return byRefreshToken;
    const claims = this.verifyJwt(token);
    return claims ? this.grants.get(claims.grant) : undefined;
  }

  revoke(grant: Grant): void {
    grant.revoked = true;
    if (grant.refreshToken !== undefined) this.refreshTokens.delete(grant.refreshToken);
    grant.refreshToken = undefined;
  }

  /** Every grant, as the state file keeps it. */
  toPersisted(): PersistedGrant[] {
    return Array.from(this.grants.values(), (grant) => ({
      id: grant.id,
      user: grant.user ?? null,
      refreshToken: grant.refreshToken ?? null,
      revoked: grant.revoked,
    }));
  }

  /** Adds the grants of a state file (checked by `loadState`). */
  restore(saved: readonly PersistedGrant[]): void {
    for (const entry of saved) {
      const grant: Grant = {
        id: entry.id,
        user: entry.user ?? undefined,
        refreshToken: entry.refreshToken ?? undefined,
        revoked: entry.revoked,
      };
      this.grants.set(grant.id, grant);
      if (grant.refreshToken !== undefined) {
        this.refreshTokens.set(grant.refreshToken, grant);
        reportFakeProcoreSecret(grant.refreshToken, 'refresh-token');
      }
    }
  }

  /** The claims of a JWT this server signed, whatever its expiry; undefined for anything else. */
  private verifyJwt(token: string): FakeProcoreAccessTokenClaims | undefined {
    const parts = token.split('.');
    if (parts.length !== 3) return undefined;
    const [header, payload, signature] = parts as [string, string, string];
    if (!constantTimeEqual(signature, hmacSha256(this.jwtSecret, `${header}.${payload}`))) {
      return undefined;
    }
    const claims = parseJson(Buffer.from(payload, 'base64url').toString('utf8'));
    return isAccessTokenClaims(claims) && this.clients.has(claims.aud) ? claims : undefined;
  }
}

function base64UrlJson(value: unknown): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}

function isAccessTokenClaims(value: unknown): value is FakeProcoreAccessTokenClaims {
  if (typeof value !== 'object' || value === null) return false;
  const claims = value as Record<string, unknown>;
  return (
    claims['iss'] === JWT_ISSUER &&
    typeof claims['sub'] === 'string' &&
    typeof claims['aud'] === 'string' &&
    typeof claims['iat'] === 'number' &&
    typeof claims['exp'] === 'number' &&
    typeof claims['jti'] === 'string' &&
    typeof claims['grant'] === 'string'
  );
}
