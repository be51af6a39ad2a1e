import { Inject, Injectable } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import type { ResolvedProcoreAuthOptions } from '../config/resolve-procore-auth-options.js';
import { PROCORE_AUTH_OPTIONS } from '../procore-auth.constants.js';
import { dataSourceResolver } from '../storage/data-source.resolver.js';
import { ProcoreTokenEntity } from '../storage/procore-token.entity.js';
import { ProcoreTokenStore } from '../storage/procore-token.store.js';
import { storageErrorCode } from '../storage/storage-errors.js';
import { TypeOrmProcoreTokenStore } from '../storage/typeorm-procore-token.store.js';

/**
 * What `isHealthy()` reports under its key: the shape of a `@nestjs/terminus`
 * `HealthIndicatorResult`, so it can be returned from a `HealthCheckService.check()` function.
 */
export type ProcoreHealthIndicatorResult<Key extends string = string> = Record<
  Key,
  {
    status: 'up' | 'down';
    /** The token table answered a query. */
    database: 'up' | 'down';
    /** Procore's token endpoint answered (any status below 500). Checked at most every `cacheMs`. */
    tokenEndpoint: 'up' | 'down';
    /** Connections whose users must authorize the app again (`undefined` when not countable). */
    reauthorizationRequired?: number;
    /** Why the status is `down`: what failed and its error code, never a secret. */
    message?: string;
  }
>;

/** Options of `ProcoreHealthIndicator.isHealthy()`. */
export interface ProcoreHealthCheckOptions {
  /** Longest wait for the database and for the token endpoint. Default 5,000 ms. */
  timeoutMs?: number;
  /** How long the token endpoint's answer and the reauthorization count are reused. Default 30,000 ms. */
  cacheMs?: number;
}

interface Cached<T> {
  value: T;
  /** When it was measured (epoch ms). */
  at: number;
}

/**
 * A health indicator for `@nestjs/terminus` (which it does not need at runtime: it returns
 * terminus' result shape). Reports `down` when the token table does not answer or Procore's token
 * endpoint cannot be reached, and counts connections needing reauthorization:
 *
 * ```ts
 * @Get('health') @HealthCheck()
 * check() { return this.health.check([() => this.procore.isHealthy('procore')]); }
 * ```
 *
 * The endpoint probe is a POST without credentials to `/oauth/token` (Procore answers 401
 * `invalid_client`, which proves it reachable; no token is consumed); it and the count are cached
 * for `cacheMs`, so frequent probes cost one indexed query.
 * @publicApi
 */
@Injectable()
export class ProcoreHealthIndicator {
  private endpoint: Cached<string | undefined> | undefined;
  private endpointProbe: Promise<string | undefined> | undefined;
  private reauthorizations: Cached<number | undefined> | undefined;

  constructor(
    @Inject(PROCORE_AUTH_OPTIONS) private readonly options: ResolvedProcoreAuthOptions,
    private readonly store: ProcoreTokenStore,
    private readonly moduleRef: ModuleRef,
  ) {}

  /** Checks the token table and the token endpoint; `key` names the result (default `procore`). */
  async isHealthy<Key extends string = 'procore'>(
    key: Key = 'procore' as Key,
    options: ProcoreHealthCheckOptions = {},
  ): Promise<ProcoreHealthIndicatorResult<Key>> {
    const timeoutMs = options.timeoutMs ?? 5_000;
    const cacheMs = options.cacheMs ?? 30_000;
    const [databaseProblem, endpointProblem] = await Promise.all([
      this.probeDatabase(timeoutMs),
      this.probeEndpoint(timeoutMs, cacheMs),
    ]);
    const reauthorizationRequired = databaseProblem
      ? undefined
      : await this.countReauthorizations(timeoutMs, cacheMs);
    const problems = [databaseProblem, endpointProblem].filter((p): p is string => !!p);
    const details = {
      status: problems.length > 0 ? ('down' as const) : ('up' as const),
      database: databaseProblem ? ('down' as const) : ('up' as const),
      tokenEndpoint: endpointProblem ? ('down' as const) : ('up' as const),
      ...(reauthorizationRequired === undefined ? {} : { reauthorizationRequired }),
      ...(problems.length > 0 ? { message: problems.join('; ') } : {}),
    };
    return { [key]: details } as ProcoreHealthIndicatorResult<Key>;
  }

  /** The token store's `ping()` (any store: TypeORM or the app's own). */
  private async probeDatabase(timeoutMs: number): Promise<string | undefined> {
    try {
      await withTimeout(this.store.ping(), timeoutMs);
      return undefined;
    } catch (error) {
      return `Procore token store unreachable (${storageErrorCode(error)})`;
    }
  }

  private async probeEndpoint(timeoutMs: number, cacheMs: number): Promise<string | undefined> {
    if (this.endpoint && this.endpoint.at + cacheMs > Date.now()) return this.endpoint.value;
    // Concurrent health checks share one probe.
    this.endpointProbe ??= this.callTokenEndpoint(timeoutMs).then((value) => {
      this.endpoint = { value, at: Date.now() };
      this.endpointProbe = undefined;
      return value;
    });
    return this.endpointProbe;
  }

  /** A POST without any credential: any answer below 500 proves the endpoint reachable. */
  private async callTokenEndpoint(timeoutMs: number): Promise<string | undefined> {
    try {
      const response = await fetch(`${this.options.authBaseUrl}/oauth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: '',
        redirect: 'manual',
        signal: AbortSignal.timeout(timeoutMs),
      });
      await response.body?.cancel();
      return response.status < 500
        ? undefined
        : `Procore token endpoint answered ${response.status}`;
    } catch (error) {
      const cause = (error as { cause?: { code?: unknown } }).cause;
      const code =
        (error as Error).name === 'TimeoutError'
          ? 'timeout'
          : typeof cause?.code === 'string'
            ? cause.code
            : 'network_error';
      return `Procore token endpoint unreachable (${code})`;
    }
  }

  /**
   * Rows in `reauthorization_required`, with the TypeORM store (another store: not counted).
   * `status` has no index yet (issue 11 revisits the indexes): the count scans the table, hence
   * the cache.
   */
  private async countReauthorizations(
    timeoutMs: number,
    cacheMs: number,
  ): Promise<number | undefined> {
    if (!(this.store instanceof TypeOrmProcoreTokenStore)) return undefined;
    if (this.reauthorizations && this.reauthorizations.at + cacheMs > Date.now()) {
      return this.reauthorizations.value;
    }
    try {
      const dataSource = dataSourceResolver(this.options.dataSource, this.moduleRef)();
      const count = await withTimeout(
        dataSource
          .getRepository(ProcoreTokenEntity)
          .count({ where: { status: 'reauthorization_required' } }),
        timeoutMs,
      );
      this.reauthorizations = { value: count, at: Date.now() };
      return this.reauthorizations.value;
    } catch {
      return undefined;
    }
  }
}

function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(Object.assign(new Error('timed out'), { code: 'timeout' })),
      ms,
    );
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}
