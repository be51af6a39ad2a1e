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
  FakeProcoreServerOptions,
  FakeProcoreTokenResponse,
  FakeProcoreUser,
} from './fake-procore.server.js';
export type { FakeProcoreSecretKind, FakeProcoreSecretListener } from './fake-procore-secrets.js';
export { connectWithFakeProcore, fakeProcoreAuthOptions } from './procore-testing.helpers.js';
