import { describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { resolveProcoreAuthOptions } from '../config/resolve-procore-auth-options.js';
import { ProcoreConfigurationError } from '../errors/procore-configuration.error.js';
import type { ProcoreTokenResponse } from '../interfaces/procore-token-response.interface.js';
import type {
  ProcoreClientCredentialsAccount,
  ProcoreOAuthClient,
} from '../oauth/procore-oauth.client.js';
import { ProcoreServiceAccounts } from './procore-service-accounts.js';

/** A token request the test answers when it wants to. */
interface PendingCall {
  account: ProcoreClientCredentialsAccount | undefined;
  answer(expiresIn?: number): string;
  fail(error: Error): void;
}

/** Stands in for `ProcoreOAuthClient.clientCredentials()`: every call waits for the test. */
class ScriptedTokenEndpoint {
  readonly calls: PendingCall[] = [];
  private issued = 0;

  clientCredentials(account?: ProcoreClientCredentialsAccount): Promise<ProcoreTokenResponse> {
    return new Promise((resolve, reject) => {
      this.calls.push({
        account,
        answer: (expiresIn = 5400) => {
          const token = `token-${account?.name ?? 'app'}-${++this.issued}`;
          resolve({ access_token: token, token_type: 'bearer', expires_in: expiresIn });
          return token;
        },
        fail: reject,
      });
    });
  }

  /** Waits until `count` calls were made (the provider calls from inside a promise chain). */
  async callsMade(count: number): Promise<PendingCall[]> {
    for (let turn = 0; turn < 100 && this.calls.length < count; turn++) {
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(this.calls).toHaveLength(count);
    return this.calls;
  }
}

/** The error `pending` rejects with (fails the test when it resolves). */
async function rejectionOf(pending: Promise<unknown>): Promise<Error> {
  return pending.then(
    () => {
      throw new Error('expected a rejection, but the call resolved');
    },
    (error: unknown) => error as Error,
  );
}

function setup(refreshSkewSeconds = 120) {
  const endpoint = new ScriptedTokenEndpoint();
  const options = resolveProcoreAuthOptions({
    clientId: 'app-client-id',
    clientSecret: 'app-client-secret',
    redirectUri: 'https://app.example.com/procore/oauth/callback',
    encryptionKey: randomBytes(32).toString('base64'),
    refreshSkewSeconds,
    serviceAccounts: {
      reports: { clientId: 'reports-id', clientSecret: 'reports-secret' },
      'crm-sync': { clientId: 'crm-id', clientSecret: 'crm-secret' },
    },
  });
  const accounts = new ProcoreServiceAccounts(options, endpoint as unknown as ProcoreOAuthClient);
  return { endpoint, accounts };
}

describe('ProcoreServiceAccounts', () => {
  it('lists the configured names, not the app itself', () => {
    expect(setup().accounts.names()).toEqual(['reports', 'crm-sync']);
  });

  it("sends each account's own credentials, and none for the app's own token", async () => {
    const { endpoint, accounts } = setup();

    const tokens = [
      accounts.getToken(),
      accounts.getToken('reports'),
      accounts.getToken('crm-sync'),
    ];
    const calls = await endpoint.callsMade(3);
    const issued = calls.map((call) => call.answer());

    expect(await Promise.all(tokens)).toEqual(issued);
    expect(calls.map((call) => call.account)).toEqual([
      undefined,
      { name: 'reports', clientId: 'reports-id', clientSecret: 'reports-secret' },
      { name: 'crm-sync', clientId: 'crm-id', clientSecret: 'crm-secret' },
    ]);
  });

  it('serves a cached token without another call until refreshSkewSeconds before expiry', async () => {
    const { endpoint, accounts } = setup(120);
    const first = accounts.getToken('reports');
    (await endpoint.callsMade(1))[0]!.answer(121);
    const token = await first;

    expect(await accounts.getToken('reports')).toBe(token);
    expect(endpoint.calls).toHaveLength(1);
  });

  it('fetches again once less than refreshSkewSeconds remain', async () => {
    const { endpoint, accounts } = setup(120);
    const first = accounts.getToken('reports');
    (await endpoint.callsMade(1))[0]!.answer(120);
    await first;

    const second = accounts.getToken('reports');
    const renewed = (await endpoint.callsMade(2))[1]!.answer();

    expect(await second).toBe(renewed);
  });

  it('shares one call among 100 concurrent callers of one account', async () => {
    const { endpoint, accounts } = setup();

    const tokens = Array.from({ length: 100 }, () => accounts.getToken('reports'));
    const token = (await endpoint.callsMade(1))[0]!.answer();

    expect(new Set(await Promise.all(tokens))).toEqual(new Set([token]));
    expect(endpoint.calls).toHaveLength(1);
  });

  it("never makes one account wait for another's call", async () => {
    const { endpoint, accounts } = setup();
    const slow = accounts.getToken('reports');
    await endpoint.callsMade(1);

    const other = accounts.getToken('crm-sync');
    const [, crmCall] = await endpoint.callsMade(2);
    const crmToken = crmCall!.answer();

    expect(await other).toBe(crmToken);
    endpoint.calls[0]!.answer();
    await slow;
  });

  it('lets the next caller fetch again after a failed call, and keeps other accounts', async () => {
    const { endpoint, accounts } = setup();
    const appToken = accounts.getToken();
    (await endpoint.callsMade(1))[0]!.answer();
    await appToken;

    const failing = accounts.getToken('reports');
    (await endpoint.callsMade(2))[1]!.fail(new Error('token endpoint down'));
    await expect(failing).rejects.toThrow('token endpoint down');

    const retried = accounts.getToken('reports');
    const token = (await endpoint.callsMade(3))[2]!.answer();
    expect(await retried).toBe(token);
    expect(await accounts.getToken()).toBe(await appToken);
  });

  describe('invalidate', () => {
    async function cachedToken(
      endpoint: ScriptedTokenEndpoint,
      accounts: ProcoreServiceAccounts,
      name: string | undefined,
    ): Promise<string> {
      const before = endpoint.calls.length;
      const pending = accounts.getToken(name);
      (await endpoint.callsMade(before + 1))[before]!.answer();
      return pending;
    }

    it('drops the rejected token once: 100 reports of it cause one new call', async () => {
      const { endpoint, accounts } = setup();
      const rejected = await cachedToken(endpoint, accounts, 'reports');

      const retries = Array.from({ length: 100 }, () => {
        accounts.invalidate('reports', rejected);
        return accounts.getToken('reports');
      });
      const renewed = (await endpoint.callsMade(2))[1]!.answer();

      expect(new Set(await Promise.all(retries))).toEqual(new Set([renewed]));
      // Late reports of the old token, after the new one is cached, change nothing.
      accounts.invalidate('reports', rejected);
      expect(await accounts.getToken('reports')).toBe(renewed);
      expect(endpoint.calls).toHaveLength(2);
    });

    it('keeps a newer token when a caller reports an older one', async () => {
      const { endpoint, accounts } = setup();
      const old = await cachedToken(endpoint, accounts, 'reports');
      accounts.invalidate('reports', old);
      const newer = await cachedToken(endpoint, accounts, 'reports');

      accounts.invalidate('reports', old);

      expect(await accounts.getToken('reports')).toBe(newer);
      expect(endpoint.calls).toHaveLength(2);
    });

    it("drops only that account's token (the app's own is undefined)", async () => {
      const { endpoint, accounts } = setup();
      const app = await cachedToken(endpoint, accounts, undefined);
      const reports = await cachedToken(endpoint, accounts, 'reports');

      accounts.invalidate(undefined, app);

      expect(await accounts.getToken('reports')).toBe(reports);
      const renewed = accounts.getToken();
      (await endpoint.callsMade(3))[2]!.answer();
      expect(await renewed).not.toBe(app);
    });
  });

  describe('unknown names', () => {
    it.each(['billing', '', 'REPORTS', 'constructor', '__proto__', 'toString'])(
      'refuses %j with a configuration error naming it and PROCORE_SERVICE_ACCOUNTS',
      async (name) => {
        const { endpoint, accounts } = setup();

        const error = await rejectionOf(accounts.getToken(name));

        expect(error).toBeInstanceOf(ProcoreConfigurationError);
        expect(error.message).toBe(
          `Unknown Procore service account "${name}": configure it in serviceAccounts (PROCORE_SERVICE_ACCOUNTS).`,
        );
        expect(() => accounts.invalidate(name, 'token')).toThrow(ProcoreConfigurationError);
        expect(endpoint.calls).toHaveLength(0);
      },
    );

    it('quotes and shortens a strange name, and names no secret', async () => {
      const { accounts } = setup();
      const name = `x"\n${'y'.repeat(200)}`;

      const error = await rejectionOf(accounts.getToken(name));

      expect(error.message).toContain(JSON.stringify(name.slice(0, 64)));
      expect(error.message).not.toContain('y'.repeat(100));
      for (const secret of ['app-client-secret', 'reports-secret', 'crm-secret']) {
        expect(error.message).not.toContain(secret);
      }
    });
  });
});
