/**
 * `nestjs-procore-auth/testing`: test doubles for applications that use the module.
 */
export { FakeProcoreServer } from './fake-procore.server.js';
export type {
  FakeProcoreAccessTokenClaims,
  FakeProcoreCounters,
  FakeProcoreFault,
  FakeProcoreFaultOptions,
  FakeProcoreFaultPath,
  FakeProcoreGrantType,
  FakeProcoreHold,
  FakeProcoreServiceAccountCredentials,
  FakeProcoreServiceAccountOptions,
  FakeProcoreTokenResponse,
  FakeProcoreUser,
} from './fake-procore.types.js';
export type { FakeProcoreServerOptions } from './fake-procore-server.options.js';
export type {
  FakeProcoreApiRequest,
  FakeProcoreCompany,
  FakeProcoreProject,
  FakeProcoreRateLimit,
} from './fake-procore-api.js';
export type { FakeProcoreSecretKind, FakeProcoreSecretListener } from './fake-procore-secrets.js';
export { connectWithFakeProcore, fakeProcoreAuthOptions } from './procore-testing.helpers.js';
export {
  PROCORE_TEST_ENCRYPTION_KEY,
  overrideProcoreAuthOptions,
  resetProcoreTables,
} from './procore-testing.overrides.js';
export {
  runProcoreOAuthStateStoreContract,
  runProcoreTokenStoreContract,
  type ProcoreContractTestFunctions,
  type ProcoreOAuthStateStoreContractOptions,
  type ProcoreTokenStoreContractOptions,
} from './procore-store-contract.js';
export {
  InMemoryProcoreOAuthStateStore,
  InMemoryProcoreTokenStore,
} from './in-memory-procore-stores.js';
