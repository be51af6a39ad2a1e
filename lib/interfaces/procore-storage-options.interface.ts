import type { Type } from '@nestjs/common';
import type { ProcoreOAuthStateStore } from '../storage/procore-oauth-state.store.js';
import type { ProcoreTokenStore } from '../storage/procore-token.store.js';

/**
 * Where the module keeps connections and pending authorizations: the `storage` module setting, as
 * `@nestjs/throttler`'s `storage`. Each store is an instance, or a class that Nest instantiates
 * inside `ProcoreAuthModule` (so it can inject what that module sees: the package's providers such
 * as `PROCORE_AUTH_OPTIONS`, global providers, and the modules listed in `forRootAsync`'s
 * `imports`). Omitted stores are the TypeORM (PostgreSQL) ones.
 *
 * ```ts
 * ProcoreAuthModule.forRoot({ ...options, storage: { tokens: RedisProcoreTokenStore, states: RedisProcoreStateStore } })
 * ```
 *
 * A store must keep the guarantees its abstract class documents; run the contract suites of
 * `nestjs-procore-auth/testing` against it. With a custom `tokens` store,
 * `api.rateLimitCoordination` defaults to `'instance'` (the shared rate-limit ledger lives in the
 * TypeORM DataSource; set `'database'` if the app has that DataSource too).
 */
export interface ProcoreStorageOptions {
  /** The connection store. Default: the package's TypeORM store on the `dataSource` option. */
  tokens?: ProcoreTokenStore | Type<ProcoreTokenStore>;
  /** The pending-authorization store. Default: the TypeORM one on the `dataSource` option. */
  states?: ProcoreOAuthStateStore | Type<ProcoreOAuthStateStore>;
}
