import type { DataSource } from 'typeorm';
import type {
  ProcoreAuthModuleOptions,
  ProcoreEnvironment,
  ProcoreOwnerResolver,
  ProcoreServiceAccountCredentials,
} from '../interfaces/procore-auth-options.interface.js';
import { ProcoreConfigurationError } from '../errors/procore-configuration.error.js';
import { validateProcoreAuthOptions } from './procore-auth-options.validation.js';
import { PROCORE_ENVIRONMENT_HOSTS } from './procore-environments.js';

/** Options with every default applied: what the providers inject (`PROCORE_AUTH_OPTIONS`). */
export interface ResolvedProcoreAuthOptions {
  clientId: string;
  clientSecret: string;
  redirectUri: string;
  environment: ProcoreEnvironment;
  authBaseUrl: string;
  apiBaseUrl: string;
  encryptionKey: string;
  previousEncryptionKeys: string[];
  ownerResolver: ProcoreOwnerResolver;
  refreshSkewSeconds: number;
  pkce: boolean;
  stateTtlSeconds: number;
  maxPendingStatesPerOwner: number;
  bindFlowToBrowser: boolean;
  lockTimeoutMs: number;
  shutdownTimeoutMs: number;
  touchIntervalSeconds: number;
  http: {
    timeoutMs: number;
    retries: number;
    retryBaseDelayMs: number;
    maxRetryAfterMs: number;
    maxResponseBytes: number;
  };
  api: {
    timeoutMs: number;
    retries: number;
    retryBaseDelayMs: number;
    maxRateLimitWaitMs: number;
    companyDisconnectBackoffSeconds: number;
    maxResponseBytes: number;
    connections: number;
    rateLimitCoordination: 'database' | 'instance';
  };
  scheduler: {
    enabled: boolean;
    intervalMs: number;
    /** `undefined`: min(15 min, half the token's lifetime) per connection. */
    lookAheadSeconds: number | undefined;
    batchSize: number;
    concurrency: number;
    activeWithinDays: number;
  };
  cache: { maxEntries: number; ttlSeconds: number };
  dataSource: DataSource | string | undefined;
  /** Named service accounts (validated names); `{}` when none. */
  serviceAccounts: Record<string, ProcoreServiceAccountCredentials>;
}

/** The default owner of a request: `req.user.id`. */
export const defaultOwnerResolver: ProcoreOwnerResolver = (request) => {
  const user = (request as { user?: { id?: unknown } } | undefined)?.user;
  const id = user?.id;
  return typeof id === 'string' || typeof id === 'number' ? id : undefined;
};

/** A copy holding only the credentials, so later changes to the caller's object are not seen. */
function copyServiceAccounts(
  accounts: Record<string, ProcoreServiceAccountCredentials> = {},
): Record<string, ProcoreServiceAccountCredentials> {
  return Object.fromEntries(
    Object.entries(accounts).map(([name, { clientId, clientSecret }]) => [
      name,
      { clientId, clientSecret },
    ]),
  );
}

function withoutTrailingSlash(url: string): string {
  return url.replace(/\/+$/, '');
}

/**
 * Validates raw module options and applies every default, for all registration paths
 * (`forRoot`, `useFactory`, `useClass`, `useExisting`). Throws `ProcoreConfigurationError`.
 */
export function resolveProcoreAuthOptions(
  raw: ProcoreAuthModuleOptions,
): ResolvedProcoreAuthOptions {
  validateProcoreAuthOptions(raw);
  const environment = raw.environment ?? 'production';
  const hosts = PROCORE_ENVIRONMENT_HOSTS[environment];
  return assertConsistentTimings({
    clientId: raw.clientId,
    clientSecret: raw.clientSecret,
    redirectUri: raw.redirectUri,
    environment,
    authBaseUrl: withoutTrailingSlash(raw.authBaseUrl ?? hosts.authBaseUrl),
    apiBaseUrl: withoutTrailingSlash(raw.apiBaseUrl ?? hosts.apiBaseUrl),
    encryptionKey: raw.encryptionKey,
    previousEncryptionKeys: raw.previousEncryptionKeys ?? [],
    ownerResolver: raw.ownerResolver ?? defaultOwnerResolver,
    refreshSkewSeconds: raw.refreshSkewSeconds ?? 120,
    pkce: raw.pkce ?? false,
    stateTtlSeconds: raw.stateTtlSeconds ?? 600,
    maxPendingStatesPerOwner: raw.maxPendingStatesPerOwner ?? 10,
    bindFlowToBrowser: raw.bindFlowToBrowser ?? true,
    lockTimeoutMs: raw.lockTimeoutMs ?? 15_000,
    shutdownTimeoutMs: raw.shutdownTimeoutMs ?? 15_000,
    touchIntervalSeconds: raw.touchIntervalSeconds ?? 300,
    http: {
      timeoutMs: raw.http?.timeoutMs ?? 10_000,
      retries: raw.http?.retries ?? 2,
      retryBaseDelayMs: raw.http?.retryBaseDelayMs ?? 250,
      maxRetryAfterMs: raw.http?.maxRetryAfterMs ?? 30_000,
      maxResponseBytes: raw.http?.maxResponseBytes ?? 65_536,
    },
    api: {
      timeoutMs: raw.api?.timeoutMs ?? 30_000,
      retries: raw.api?.retries ?? 2,
      retryBaseDelayMs: raw.api?.retryBaseDelayMs ?? 250,
      maxRateLimitWaitMs: raw.api?.maxRateLimitWaitMs ?? 60_000,
      companyDisconnectBackoffSeconds: raw.api?.companyDisconnectBackoffSeconds ?? 300,
      maxResponseBytes: raw.api?.maxResponseBytes ?? 32 * 1024 * 1024,
      connections: raw.api?.connections ?? 64,
      rateLimitCoordination: raw.api?.rateLimitCoordination ?? 'database',
    },
    scheduler: {
      enabled: raw.scheduler?.enabled ?? true,
      intervalMs: raw.scheduler?.intervalMs ?? 60_000,
      lookAheadSeconds: raw.scheduler?.lookAheadSeconds,
      batchSize: raw.scheduler?.batchSize ?? 100,
      concurrency: raw.scheduler?.concurrency ?? 4,
      activeWithinDays: raw.scheduler?.activeWithinDays ?? 7,
    },
    cache: {
      maxEntries: raw.cache?.maxEntries ?? 10_000,
      ttlSeconds: raw.cache?.ttlSeconds ?? 60,
    },
    dataSource: raw.dataSource,
    serviceAccounts: copyServiceAccounts(raw.serviceAccounts),
  });
}

/** Room left for the database statements around the one Procore call a lock is held across. */
const DATABASE_MARGIN_MS = 1_000;

/**
 * The timing options depend on each other: a row lock is held across one call to Procore (at most
 * `http.timeoutMs`), so waiters (`lockTimeoutMs`) and the shutdown drain (`shutdownTimeoutMs`)
 * must outlast one call, or they give up on refreshes that are about to succeed.
 */
function assertConsistentTimings(options: ResolvedProcoreAuthOptions): ResolvedProcoreAuthOptions {
  const needed = options.http.timeoutMs + DATABASE_MARGIN_MS;
  const problems = (['lockTimeoutMs', 'shutdownTimeoutMs'] as const)
    .filter((name) => options[name] < needed)
    .map(
      (name) =>
        `${name} (${options[name]} ms) must be at least http.timeoutMs + ${DATABASE_MARGIN_MS} ms (${needed} ms): raise ${name} or lower http.timeoutMs`,
    );
  if (problems.length > 0) {
    throw new ProcoreConfigurationError(
      `Invalid ProcoreAuthModule options:\n  - ${problems.join('\n  - ')}`,
    );
  }
  return options;
}
