import { Inject, Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import type { ResolvedProcoreAuthOptions } from '../config/resolve-procore-auth-options.js';
import { ProcoreAuthEvents } from '../events/procore-auth.events.js';
import { ProcoreMetrics } from '../metrics/procore-metrics.js';
import { PROCORE_AUTH_OPTIONS } from '../procore-auth.constants.js';
import { normalizeOwner, type ProcoreOwnerId } from '../tokens/procore-owner-id.js';
import { ProcoreServiceAccounts } from '../tokens/procore-service-accounts.js';
import { ProcoreTokenService } from '../tokens/procore-token.service.js';
import { normalizeCompanyId, type ProcoreCompanyId } from './company-id.js';
import {
  createApiContext,
  ownerHolder,
  serviceAccountHolder,
  type ApiContext,
} from './procore-api.context.js';
import { ProcoreApiTransport } from './procore-api.transport.js';
import { ProcoreScopedClient } from './procore-scoped-client.js';
import { RateLimitGovernor } from './rate-limit.governor.js';
import { RateLimitLedger } from './rate-limit.ledger.js';
import type { DataSource } from 'typeorm';
import { assertStorageReady, dataSourceResolver } from '../storage/data-source.resolver.js';
import { ProcoreRateLimitEntity } from '../storage/procore-rate-limit.entity.js';
import { storageErrorCode } from '../storage/storage-errors.js';

/** Options of `forOwner()` / `forServiceAccount()`. */
export interface ProcoreClientScope {
  /** The company every call of the client concerns (`Procore-Company-Id`). Ids may exceed 2^53. */
  companyId?: ProcoreCompanyId;
}

/**
 * Calls Procore's REST API for an owner (a user who connected) or a service account, on the
 * configured environment's API host. `forOwner(id)` / `forServiceAccount(name?)` return a
 * `ProcoreScopedClient`; it sends the token, the company header, recovers from 401 once (a
 * coalesced refresh), fails fast for companies that disconnected the app, waits out Procore's rate
 * limit instead of firing into 429s, and pages through lists.
 * @publicApi
 */
@Injectable()
export class ProcoreClient implements OnModuleInit {
  private readonly context: ApiContext;
  private readonly resolveDataSource: (() => DataSource) | undefined;

  constructor(
    @Inject(PROCORE_AUTH_OPTIONS) options: ResolvedProcoreAuthOptions,
    private readonly tokens: ProcoreTokenService,
    private readonly serviceAccounts: ProcoreServiceAccounts,
    transport: ProcoreApiTransport,
    events: ProcoreAuthEvents,
    moduleRef: ModuleRef,
    metrics: ProcoreMetrics,
  ) {
    const logger = new Logger('ProcoreApi');
    this.resolveDataSource =
      options.api.rateLimitCoordination === 'database'
        ? dataSourceResolver(options.dataSource, moduleRef)
        : undefined;
    const ledger = this.resolveDataSource && new RateLimitLedger(this.resolveDataSource);
    let ledgerFailing = false;
    const governor = new RateLimitGovernor(ledger, (error) => {
      // Once per outage at warn level: the instance goes on with its own view of the budget.
      const line = `Procore rate-limit ledger unavailable (${storageErrorCode(error)}): this instance goes on with the budget its own answers report.`;
      if (ledgerFailing) logger.debug(line);
      else logger.warn(line);
      ledgerFailing = true;
    });
    this.context = createApiContext({ options, transport, governor, events, logger, metrics });
  }

  /** With database coordination, fails at bootstrap when `procore_rate_limits` is missing. */
  async onModuleInit(): Promise<void> {
    if (this.resolveDataSource) {
      await assertStorageReady(this.resolveDataSource(), ProcoreRateLimitEntity);
    }
  }

  /** A client sending `ownerId`'s access token. Validates the ids now; fetches no token yet. */
  forOwner(ownerId: ProcoreOwnerId, scope: ProcoreClientScope = {}): ProcoreScopedClient {
    const owner = normalizeOwner(ownerId);
    const holder = ownerHolder(
      owner,
      () => this.tokens.getAccessToken(owner),
      (rejected) => this.tokens.refreshRejected(owner, rejected),
    );
    return new ProcoreScopedClient(this.context, holder, companyOf(scope));
  }

  /**
   * A client sending a client-credentials token: of the named account in `serviceAccounts`, or of
   * the app's own credentials when `name` is omitted.
   */
  forServiceAccount(name?: string, scope: ProcoreClientScope = {}): ProcoreScopedClient {
    const holder = serviceAccountHolder(
      name ?? '',
      () => this.serviceAccounts.getToken(name),
      (rejected) => {
        this.serviceAccounts.invalidate(name, rejected);
        return this.serviceAccounts.getToken(name);
      },
    );
    return new ProcoreScopedClient(this.context, holder, companyOf(scope));
  }
}

function companyOf(scope: ProcoreClientScope): string | undefined {
  return scope.companyId === undefined ? undefined : normalizeCompanyId(scope.companyId);
}
