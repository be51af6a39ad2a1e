import { randomBytes } from 'node:crypto';
import type { ProcoreAuthModuleOptions } from '../interfaces/procore-auth-options.interface.js';
import type { ProcoreTokenService } from '../tokens/procore-token.service.js';
import { reportFakeProcoreSecret } from './fake-procore-secrets.js';
import type { FakeProcoreServer } from './fake-procore.server.js';

/**
 * Module options that point `ProcoreAuthModule` at a fake Procore server, for your tests:
 * `ProcoreAuthModule.forRoot(fakeProcoreAuthOptions(fake))`. A fresh encryption key is generated
 * (pass `encryptionKey` to share one between app instances) and the scheduler is off, so tests
 * decide when refreshes happen. The generated key is reported to `FakeProcoreServer.onSecret`
 * listeners.
 * @publicApi
 */
export function fakeProcoreAuthOptions(
  fake: FakeProcoreServer,
  overrides: Partial<ProcoreAuthModuleOptions> = {},
): ProcoreAuthModuleOptions {
  const encryptionKey = randomBytes(32).toString('base64');
  reportFakeProcoreSecret(encryptionKey, 'encryption-key');
  return {
    clientId: fake.clientId,
    clientSecret: fake.clientSecret,
    redirectUri: 'http://127.0.0.1/procore/oauth/callback',
    authBaseUrl: fake.url,
    apiBaseUrl: fake.url,
    encryptionKey: `test:${encryptionKey}`,
    scheduler: { enabled: false },
    ...overrides,
  };
}

/**
 * Connects an owner through the real authorization-code flow against the fake: our authorize
 * URL, the fake's authorize endpoint (which auto-approves its user), then `handleCallback()`.
 * Resolves to the stored connection.
 * @publicApi
 */
export async function connectWithFakeProcore(
  service: ProcoreTokenService,
  ownerId: string,
): ReturnType<ProcoreTokenService['handleCallback']> {
  const { url } = await service.getAuthorizationUrl(ownerId);
  const response = await fetch(url, { redirect: 'manual' });
  const location = response.headers.get('location');
  if (response.status !== 302 || !location) {
    throw new Error(
      `The fake Procore server did not approve the authorization (status ${response.status}).`,
    );
  }
  const callback = new URL(location);
  return service.handleCallback({
    code: callback.searchParams.get('code'),
    state: callback.searchParams.get('state'),
    error: callback.searchParams.get('error'),
    ownerId,
  });
}
