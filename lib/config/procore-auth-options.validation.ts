import 'reflect-metadata';
import { plainToInstance, Type } from 'class-transformer';
import {
  IsArray,
  IsBoolean,
  IsIn,
  IsInt,
  IsNotEmpty,
  IsOptional,
  IsString,
  IsUrl,
  Matches,
  Max,
  Min,
  ValidateNested,
  validateSync,
  type ValidationError,
} from 'class-validator';
import { isIP } from 'node:net';
import { ProcoreConfigurationError } from '../errors/procore-configuration.error.js';
import { PROCORE_ENV_VARIABLES, procoreServiceAccountEnv } from './procore-env.js';
import { PROCORE_ENVIRONMENTS } from './procore-environments.js';

const URL_OPTIONS = { require_tld: false, require_protocol: true, protocols: ['http', 'https'] };
/** `base64` or `keyId:base64`; the length (32 bytes) is checked when the keyring is built. */
const KEY_FORMAT = /^(?:[A-Za-z0-9_-]{1,32}:)?[A-Za-z0-9+/_-]{42,44}={0,2}$/;
const KEY_MESSAGE = '$property must be 32 random bytes in base64, optionally prefixed "keyId:"';

class HttpOptionsSchema {
  @IsOptional() @IsInt() @Min(1) timeoutMs?: number;
  @IsOptional() @IsInt() @Min(0) @Max(10) retries?: number;
  @IsOptional() @IsInt() @Min(0) retryBaseDelayMs?: number;
  @IsOptional() @IsInt() @Min(0) maxRetryAfterMs?: number;
  @IsOptional() @IsInt() @Min(1024) maxResponseBytes?: number;
}

class ApiOptionsSchema {
  @IsOptional() @IsInt() @Min(1) timeoutMs?: number;
  @IsOptional() @IsInt() @Min(0) @Max(10) retries?: number;
  @IsOptional() @IsInt() @Min(0) retryBaseDelayMs?: number;
  @IsOptional() @IsInt() @Min(0) maxRateLimitWaitMs?: number;
  @IsOptional() @IsInt() @Min(0) companyDisconnectBackoffSeconds?: number;
  @IsOptional() @IsInt() @Min(1024) maxResponseBytes?: number;
  @IsOptional() @IsInt() @Min(1) @Max(1024) connections?: number;
  @IsOptional() @IsIn(['database', 'instance']) rateLimitCoordination?: string;
}

class SchedulerOptionsSchema {
  @IsOptional() @IsBoolean() enabled?: boolean;
  @IsOptional() @IsInt() @Min(100) intervalMs?: number;
  @IsOptional() @IsInt() @Min(1) lookAheadSeconds?: number;
  @IsOptional() @IsInt() @Min(1) @Max(10_000) batchSize?: number;
  @IsOptional() @IsInt() @Min(1) @Max(256) concurrency?: number;
  @IsOptional() @IsInt() @Min(0) activeWithinDays?: number;
}

class CacheOptionsSchema {
  @IsOptional() @IsInt() @Min(0) maxEntries?: number;
  @IsOptional() @IsInt() @Min(0) ttlSeconds?: number;
}

/** class-validator schema of `ProcoreAuthModuleOptions` (functions and the DataSource are checked by hand). */
export class ProcoreAuthOptionsSchema {
  @IsString() @IsNotEmpty() clientId!: string;
  @IsString() @IsNotEmpty() clientSecret!: string;
  @IsUrl(URL_OPTIONS) redirectUri!: string;
  @IsOptional() @IsIn(PROCORE_ENVIRONMENTS) environment?: string;
  @IsOptional() @IsUrl(URL_OPTIONS) authBaseUrl?: string;
  @IsOptional() @IsUrl(URL_OPTIONS) apiBaseUrl?: string;
  @IsString() @Matches(KEY_FORMAT, { message: KEY_MESSAGE }) encryptionKey!: string;
  @IsOptional()
  @IsArray()
  @Matches(KEY_FORMAT, { each: true, message: KEY_MESSAGE })
  previousEncryptionKeys?: string[];
  @IsOptional() @IsInt() @Min(0) refreshSkewSeconds?: number;
  @IsOptional() @IsBoolean() pkce?: boolean;
  @IsOptional() @IsInt() @Min(10) stateTtlSeconds?: number;
  @IsOptional() @IsInt() @Min(1) @Max(1000) maxPendingStatesPerOwner?: number;
  @IsOptional() @IsBoolean() bindFlowToBrowser?: boolean;
  @IsOptional() @IsInt() @Min(100) lockTimeoutMs?: number;
  @IsOptional() @IsInt() @Min(0) shutdownTimeoutMs?: number;
  @IsOptional() @IsInt() @Min(0) touchIntervalSeconds?: number;
  @IsOptional() @ValidateNested() @Type(() => HttpOptionsSchema) http?: HttpOptionsSchema;
  @IsOptional() @ValidateNested() @Type(() => ApiOptionsSchema) api?: ApiOptionsSchema;
  @IsOptional()
  @ValidateNested()
  @Type(() => SchedulerOptionsSchema)
  scheduler?: SchedulerOptionsSchema;
  @IsOptional() @ValidateNested() @Type(() => CacheOptionsSchema) cache?: CacheOptionsSchema;
}

function describeProblem(path: string, error: ValidationError): string {
  const envName = PROCORE_ENV_VARIABLES[path as keyof typeof PROCORE_ENV_VARIABLES];
  const missing = error.value === undefined || error.value === null || error.value === '';
  const what = missing
    ? `${path} is missing`
    : `${path} is invalid (${Object.values(error.constraints ?? {}).join('; ')})`;
  const fix = envName
    ? `set ${envName} or pass ${path} to ProcoreAuthModule.forRoot()`
    : `fix ${path} in the options of ProcoreAuthModule.forRoot()`;
  return `${what}: ${fix}`;
}

function flatten(errors: ValidationError[], prefix = ''): string[] {
  return errors.flatMap((error) => {
    const path = prefix ? `${prefix}.${error.property}` : error.property;
    return error.children?.length ? flatten(error.children, path) : [describeProblem(path, error)];
  });
}

/** `localhost`, `::1` and 127.0.0.0/8 addresses (not host names that merely start with "127."). */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
}

/** Procore tokens travel over HTTPS only; plain HTTP is accepted for loopback hosts (tests, the fake server). */
function httpsProblems(options: Record<string, unknown>): string[] {
  const problems: string[] = [];
  for (const option of ['redirectUri', 'authBaseUrl', 'apiBaseUrl'] as const) {
    const value = options[option];
    if (typeof value !== 'string' || !URL.canParse(value)) continue;
    const url = new URL(value);
    if (url.protocol !== 'https:' && !isLoopbackHost(url.hostname)) {
      problems.push(
        `${option} must use https (only loopback hosts may use http): set ${PROCORE_ENV_VARIABLES[option]} or pass ${option} to ProcoreAuthModule.forRoot() with an https:// URL`,
      );
    }
  }
  return problems;
}

/** Service-account names: they become env variable names and appear in messages. */
const SERVICE_ACCOUNT_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** `serviceAccounts` is a record with free keys, so it is checked by hand; values are never echoed. */
function serviceAccountProblems(serviceAccounts: unknown): string[] {
  if (serviceAccounts === undefined) return [];
  if (
    serviceAccounts === null ||
    typeof serviceAccounts !== 'object' ||
    Array.isArray(serviceAccounts)
  ) {
    return [
      `serviceAccounts is invalid (must be an object of { clientId, clientSecret } by name): set ${PROCORE_ENV_VARIABLES.serviceAccounts} or pass serviceAccounts to ProcoreAuthModule.forRoot()`,
    ];
  }
  return Object.entries(serviceAccounts).flatMap(([name, account]) => {
    if (!SERVICE_ACCOUNT_NAME.test(name)) {
      return [
        `serviceAccounts has an invalid name ${JSON.stringify(name.slice(0, 64))} (letters, digits, "_" and "-", at most 64): fix ${PROCORE_ENV_VARIABLES.serviceAccounts} or the keys of serviceAccounts`,
      ];
    }
    const env = procoreServiceAccountEnv(name);
    if (account === null || typeof account !== 'object') {
      return [
        `serviceAccounts.${name} is invalid (must be { clientId, clientSecret }): set ${env.clientId} and ${env.clientSecret} or pass serviceAccounts.${name} to ProcoreAuthModule.forRoot()`,
      ];
    }
    const fields = account as Partial<Record<'clientId' | 'clientSecret', unknown>>;
    return (['clientId', 'clientSecret'] as const).flatMap((field) => {
      const value = fields[field];
      if (typeof value === 'string' && value !== '') return [];
      const path = `serviceAccounts.${name}.${field}`;
      const what =
        value === undefined || value === null || value === ''
          ? `${path} is missing`
          : `${path} is invalid (must be a non-empty string)`;
      return [`${what}: set ${env[field]} or pass ${path} to ProcoreAuthModule.forRoot()`];
    });
  });
}

/**
 * Validates raw options with class-validator and throws one `ProcoreConfigurationError` listing
 * every problem. Values are never echoed (they may be secrets): messages name the option and its
 * env variable instead.
 */
export function validateProcoreAuthOptions(raw: unknown): void {
  if (raw === null || typeof raw !== 'object') {
    throw new ProcoreConfigurationError(
      'ProcoreAuthModule options are missing: pass an object to forRoot() or return one from the forRootAsync() factory.',
    );
  }
  // Functions and the DataSource are checked by hand: class-transformer would try to rebuild them
  // (and serviceAccounts, whose keys are names).
  const { ownerResolver, dataSource, serviceAccounts, ...plain } = raw as Record<string, unknown>;
  const schema = plainToInstance(ProcoreAuthOptionsSchema, plain);
  const problems = flatten(validateSync(schema, { validationError: { target: false } }));
  problems.push(...httpsProblems(plain));
  problems.push(...serviceAccountProblems(serviceAccounts));
  if (ownerResolver !== undefined && typeof ownerResolver !== 'function') {
    problems.push('ownerResolver is invalid (must be a function of the request)');
  }
  const isDataSource =
    typeof dataSource === 'object' && dataSource !== null && 'createQueryRunner' in dataSource;
  if (
    dataSource !== undefined &&
    !isDataSource &&
    (typeof dataSource !== 'string' || !dataSource)
  ) {
    problems.push('dataSource is invalid (must be a TypeORM DataSource or the name of one)');
  }
  if (problems.length > 0) {
    throw new ProcoreConfigurationError(
      `Invalid ProcoreAuthModule options:\n  - ${problems.join('\n  - ')}`,
    );
  }
}
