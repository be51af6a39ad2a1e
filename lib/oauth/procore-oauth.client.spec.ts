import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { resolveProcoreAuthOptions } from '../config/resolve-procore-auth-options.js';
import { ProcoreConfigurationError } from '../errors/procore-configuration.error.js';
import { ProcoreOAuthError } from '../errors/procore-oauth.error.js';
import { FakeProcoreServer } from '../testing/fake-procore.server.js';
import { fakeProcoreAuthOptions } from '../testing/procore-testing.helpers.js';
import { ProcoreOAuthClient } from './procore-oauth.client.js';

/** The error `work` rejects with (fails the test when it resolves). */
async function rejectionOf(work: () => Promise<unknown>): Promise<Error> {
  try {
    await work();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a rejection, but the call resolved');
}

describe('ProcoreOAuthClient: OAuth error codes of the token endpoint', () => {
  let fake: FakeProcoreServer;
  let client: ProcoreOAuthClient;

  beforeAll(async () => {
    fake = await FakeProcoreServer.start();
    client = new ProcoreOAuthClient(resolveProcoreAuthOptions(fakeProcoreAuthOptions(fake)));
  });

  afterAll(async () => {
    await fake.close();
  });

  /** The token endpoint answers `status` with this JSON body once. */
  function answerOnce(status: number, body: Record<string, unknown>): void {
    fake.injectFault({
      kind: 'status',
      status,
      body: JSON.stringify(body),
      contentType: 'application/json',
    });
  }

  it.each(['invalid_grant', 'invalid_request', 'unsupported_grant_type', 'x'.repeat(64)])(
    'keeps the well-formed code %s',
    async (code) => {
      answerOnce(400, { error: code });

      const error = await rejectionOf(() => client.refresh('some-refresh-token'));

      expect(error).toBeInstanceOf(ProcoreOAuthError);
      expect((error as ProcoreOAuthError).error).toBe(code);
    },
  );

  it.each([
    ['longer than 64 characters (the last_error_code column)', 'invalid_grant_'.repeat(10)],
    ['upper case', 'INVALID_GRANT'],
    ['with spaces and punctuation', 'invalid grant!'],
    ['with a newline (log injection)', 'invalid_grant\nlevel=error forged'],
    ['carrying a token-like value', 'invalid_grant:eyJhbGciOiJIUzI1NiJ9'],
    ['empty', ''],
  ])('replaces a code %s with unknown_error', async (_name, code) => {
    answerOnce(400, { error: code, error_description: 'described' });

    const error = await rejectionOf(() => client.refresh('some-refresh-token'));

    expect(error).toBeInstanceOf(ProcoreOAuthError);
    expect((error as ProcoreOAuthError).error).toBe('unknown_error');
    expect(error.message).toContain('400 unknown_error');
    if (code) expect(error.message).not.toContain(code);
  });

  it('still recognises invalid_client as a configuration error', async () => {
    answerOnce(400, { error: 'invalid_client' });

    const error = await rejectionOf(() => client.refresh('some-refresh-token'));

    expect(error).toBeInstanceOf(ProcoreConfigurationError);
    expect(error.message).toContain('(invalid_client)');
  });

  it('names unknown_error, not the raw value, when a 401 carries a malformed code', async () => {
    const raw = 'Invalid Client Credentials For App 12345';
    answerOnce(401, { error: raw });

    const error = await rejectionOf(() => client.refresh('some-refresh-token'));

    expect(error).toBeInstanceOf(ProcoreConfigurationError);
    expect(error.message).toContain('(unknown_error)');
    expect(error.message).not.toContain(raw);
  });
});
