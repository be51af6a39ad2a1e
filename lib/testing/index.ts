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
  FakeProcoreServerOptions,
  FakeProcoreTokenResponse,
  FakeProcoreUser,
} from './fake-procore.server.js';
export { connectWithFakeProcore, fakeProcoreAuthOptions } from './procore-testing.helpers.js';
