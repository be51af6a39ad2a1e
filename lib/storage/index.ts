import { CreateProcoreAuthTables1763900000000 } from './migrations/1763900000000-create-procore-auth-tables.js';
import { IndexProcoreOAuthStatesOwner1764000000000 } from './migrations/1764000000000-index-procore-oauth-states-owner.js';
import { CreateProcoreRateLimits1764100000000 } from './migrations/1764100000000-create-procore-rate-limits.js';
import { AddProcoreRateLimitShares1764200000000 } from './migrations/1764200000000-add-procore-rate-limit-shares.js';
import { IndexProcoreOAuthTokensRefreshDue1764300000000 } from './migrations/1764300000000-index-procore-oauth-tokens-refresh-due.js';
import { ProcoreOAuthStateEntity } from './procore-oauth-state.entity.js';
import { ProcoreRateLimitEntity } from './procore-rate-limit.entity.js';
import { ProcoreTokenEntity } from './procore-token.entity.js';

/**
 * Entities to list in your DataSource's `entities` (or let `autoLoadEntities` pick them up).
 * @publicApi
 */
export const procoreAuthEntities = [
  ProcoreTokenEntity,
  ProcoreOAuthStateEntity,
  ProcoreRateLimitEntity,
];
/**
 * Migrations to list in your DataSource's `migrations`.
 * @publicApi
 */
export const procoreAuthMigrations = [
  CreateProcoreAuthTables1763900000000,
  IndexProcoreOAuthStatesOwner1764000000000,
  CreateProcoreRateLimits1764100000000,
  AddProcoreRateLimitShares1764200000000,
  IndexProcoreOAuthTokensRefreshDue1764300000000,
];
