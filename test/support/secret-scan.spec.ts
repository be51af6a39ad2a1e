import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Logger } from '@nestjs/common';
import { ProcoreAuthEvents, ProcoreAuthEventType, ProcoreTokenService } from 'nestjs-procore-auth';
import { FakeProcoreServer } from 'nestjs-procore-auth/testing';
import { generateKey } from './procore-test-app.js';
import {
  describeFindings,
  scanForSecrets,
  secretScanState,
  type SecretScanEntry,
} from './secret-scan.js';

const SECRET = 'rt_9f8e7d6c5b4a39281706f5e4d3c2b1a0';
const JWT =
  'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI0MjQyIn0.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg';

function entry(where: string, text: string, test?: string): SecretScanEntry {
  return { where, text, test };
}

describe('the secret scanner', () => {
  const registered = new Map([[SECRET, 'refresh-token (FakeProcoreServer)']]);

  it('reports a registered secret with where it appeared, without printing it', () => {
    const findings = scanForSecrets(
      [
        entry('log warn', 'nothing to see'),
        entry(
          'HTTP response to GET /me (500) body',
          `{"message":"refresh ${SECRET} failed"}`,
          'a test',
        ),
      ],
      registered,
    );

    expect(findings).toEqual([
      {
        where: 'HTTP response to GET /me (500) body',
        test: 'a test',
        kind: 'refresh-token (FakeProcoreServer)',
        preview: '"rt_9…" (35 chars)',
      },
    ]);
    const message = describeFindings(findings);
    expect(message).toContain('HTTP response to GET /me (500) body');
    expect(message).toContain('refresh-token (FakeProcoreServer)');
    expect(message).not.toContain(SECRET);
    expect(message).not.toContain(SECRET.slice(0, 12));
  });

  it('reports a secret at the very start and the very end of a text, once per place', () => {
    const findings = scanForSecrets(
      [entry('log error', `${SECRET} and again ${SECRET}`), entry('event x', `…${SECRET}`)],
      registered,
    );

    expect(findings.map((finding) => finding.where)).toEqual(['log error', 'event x']);
  });

  it('reports any JWT-looking string, registered or not', () => {
    const findings = scanForSecrets([entry('console.log', `Bearer ${JWT}`)], new Map());

    expect(findings).toEqual([
      expect.objectContaining({ where: 'console.log', kind: 'JWT-looking string' }),
    ]);
    expect(describeFindings(findings)).not.toContain(JWT.slice(0, 20));
  });

  it('finds nothing in output without secrets, short JWT fragments included', () => {
    const findings = scanForSecrets(
      [
        entry('log log', 'Procore token refresh: 3 refreshed, 0 failed'),
        // What an "invalid JSON" answer of the fake looks like when quoted in a message.
        entry('error', 'Unexpected end of JSON input: {"access_token":"eyJhbGciOi'),
        entry('log debug', SECRET.slice(0, -1)),
      ],
      registered,
    );

    expect(findings).toEqual([]);
  });
});

describe('the secret check wiring (secret-scan.setup.ts)', () => {
  let fake: FakeProcoreServer;
  let server: Server;

  beforeAll(async () => {
    fake = await FakeProcoreServer.start();
    server = createServer((_request, response) => {
      response.setHeader('x-marker', 'header-marker-1');
      response.write('body-marker-');
      response.end(Buffer.from('2'));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
  });
  afterAll(async () => {
    server.close();
    await fake.close();
  });

  const recorded = (): string =>
    secretScanState()
      .entries.map((e) => `${e.where}: ${e.text}`)
      .join('\n');

  it('registers what the fake issues and the keys the tests generate', async () => {
    const tokens = fake.issueTokens();
    const key = generateKey('wiring');
    const { secrets } = secretScanState();

    expect(secrets.get(tokens.access_token)).toBe('access-token (FakeProcoreServer)');
    expect(secrets.get(tokens.refresh_token)).toBe('refresh-token (FakeProcoreServer)');
    expect(secrets.get(fake.clientSecret)).toBe('client-secret (FakeProcoreServer)');
    expect(secrets.has(key)).toBe(false); // the material is what matters, with or without its id
    expect(secrets.get(key.slice('wiring:'.length))).toBe('encryption key (generateKey(wiring))');
  });

  it('records Nest log lines at every level, events, HTTP responses and service errors', async () => {
    new Logger('Wiring').debug('debug-marker');
    new Logger('Wiring').verbose('verbose-marker');
    new ProcoreAuthEvents().emit({
      type: ProcoreAuthEventType.Revoked,
      ownerId: 'event-marker',
      at: new Date(0),
    });
    const { port } = server.address() as AddressInfo;
    await (await fetch(`http://127.0.0.1:${port}/path?code=query-marker`)).text();
    // Called on a bare object, the facade throws (synchronously or not): recorded either way.
    await expect(
      (async () => ProcoreTokenService.prototype.getAccessToken.call({}, 'error-marker'))(),
    ).rejects.toBeInstanceOf(Error);

    const text = recorded();
    expect(text).toContain('log debug: debug-marker Wiring');
    expect(text).toContain('log verbose: verbose-marker Wiring');
    expect(text).toContain(
      "event procore.connection.revoked: { type: 'procore.connection.revoked', ownerId: 'event-marker'",
    );
    expect(text).toContain('HTTP response to GET /path (200) headers');
    expect(text).toContain("'header-marker-1'");
    expect(text).toContain('HTTP response to GET /path (200) body: body-marker-2');
    expect(text).not.toContain('query-marker');
    expect(text).toContain('error from ProcoreTokenService.getAccessToken():');
  });

  it("leaves out the fake server's own responses, which carry tokens by design", async () => {
    const response = await fetch(`${fake.url}/oauth/token`, {
      method: 'POST',
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: fake.clientId,
        client_secret: fake.clientSecret,
      }),
    });
    const { access_token: accessToken } = (await response.json()) as { access_token: string };

    expect(secretScanState().secrets.has(accessToken)).toBe(true);
    expect(recorded()).not.toContain(accessToken);
    const { entries, secrets } = secretScanState();
    expect(scanForSecrets(entries, secrets)).toEqual([]);
  });
});
