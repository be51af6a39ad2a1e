import { afterEach, describe, expect, it, jest } from '@jest/globals';
import { inspect } from 'node:util';
import { ConsoleLogger } from '@nestjs/common';
import { ProcoreOAuthStateEntity } from './procore-oauth-state.entity.js';
import { ProcoreTokenEntity } from './procore-token.entity.js';
import type { ProcoreTokenRecord } from './procore-token.store.js';
import { REDACTED, redactTokenRecord } from './redact.js';

const ACCESS = 'v1:k1:access-ciphertext-AAAAAAAAAAAAAAAAAAAA';
const REFRESH = 'v1:k1:refresh-ciphertext-BBBBBBBBBBBBBBBBBBB';
const VERIFIER = 'v1:k1:verifier-ciphertext-CCCCCCCCCCCCCCCCC';

function tokenEntity(): ProcoreTokenEntity {
  return Object.assign(new ProcoreTokenEntity(), {
    id: '6f1c2b1e-0000-4000-8000-000000000001',
    ownerId: 'owner-1',
    environment: 'production',
    status: 'active',
    accessToken: ACCESS,
    refreshToken: REFRESH,
    keyId: 'k1',
    expiresAt: new Date('2026-01-01T00:00:00Z'),
    version: 3,
  });
}

function stateEntity(): ProcoreOAuthStateEntity {
  return Object.assign(new ProcoreOAuthStateEntity(), {
    stateHash: 'a'.repeat(64),
    ownerId: 'owner-1',
    codeVerifier: VERIFIER,
    returnTo: '/projects',
    expiresAt: new Date('2026-01-01T00:10:00Z'),
  });
}

function tokenRecord(): ProcoreTokenRecord {
  return redactTokenRecord({
    ownerId: 'owner-1',
    environment: 'production',
    status: 'active',
    accessToken: ACCESS,
    refreshToken: REFRESH,
    keyId: 'k1',
    expiresAt: new Date('2026-01-01T00:00:00Z'),
    tokenLifetimeSeconds: 5400,
    version: 3,
    connectedAt: new Date('2025-12-31T00:00:00Z'),
    lastRefreshedAt: null,
    lastUsedAt: null,
    failureCount: 0,
    lastErrorCode: null,
    lastErrorAt: null,
    revokedAt: null,
  });
}

/** Everything a Nest ConsoleLogger (text and JSON formats) writes for `value`, at two levels. */
function printedByNestLogger(value: unknown): string {
  const written: string[] = [];
  const capture = (chunk: unknown): boolean => {
    written.push(String(chunk));
    return true;
  };
  jest.spyOn(process.stdout, 'write').mockImplementation(capture);
  jest.spyOn(process.stderr, 'write').mockImplementation(capture);
  for (const logger of [
    new ConsoleLogger('Redaction'),
    new ConsoleLogger('Redaction', { json: true, colors: false }),
  ]) {
    logger.log(value);
    logger.error('failed for', value);
  }
  jest.restoreAllMocks();
  return written.join('');
}

describe('printing stored secrets', () => {
  afterEach(() => {
    jest.restoreAllMocks();
  });

  describe.each([
    ['ProcoreTokenEntity', tokenEntity, [ACCESS, REFRESH]],
    ['ProcoreOAuthStateEntity', stateEntity, [VERIFIER]],
    ['a ProcoreTokenRecord', tokenRecord, [ACCESS, REFRESH]],
  ] as [string, () => object, string[]][])('%s', (_name, make, secrets) => {
    it.each([
      ['util.inspect', (value: unknown) => inspect(value, { depth: null })],
      ['util.inspect, nested', (value: unknown) => inspect({ row: [value] }, { depth: null })],
      ['JSON.stringify', (value: unknown) => JSON.stringify(value)],
      ['JSON.stringify, nested', (value: unknown) => JSON.stringify({ rows: [value] })],
      ["Nest's ConsoleLogger", printedByNestLogger],
    ])('shows [redacted] instead of the ciphertext through %s', (_how, print) => {
      const printed = print(make());

      expect(printed).toContain(REDACTED);
      expect(printed).toContain('owner-1');
      for (const secret of secrets) expect(printed).not.toContain(secret);
    });
  });

  it('keeps the other columns, and null tokens, as they are', () => {
    const entity = Object.assign(tokenEntity(), { accessToken: null, refreshToken: null });

    expect(JSON.parse(JSON.stringify(entity))).toEqual({
      id: '6f1c2b1e-0000-4000-8000-000000000001',
      ownerId: 'owner-1',
      environment: 'production',
      status: 'active',
      accessToken: null,
      refreshToken: null,
      keyId: 'k1',
      expiresAt: '2026-01-01T00:00:00.000Z',
      version: 3,
    });
    expect(inspect(tokenEntity())).toMatch(
      /^ProcoreTokenEntity \{\n {2}id: '6f1c2b1e-[^']+',\n {2}ownerId: 'owner-1',/,
    );
    expect(JSON.parse(JSON.stringify(tokenRecord()))).toMatchObject({
      accessToken: REDACTED,
      refreshToken: REDACTED,
      tokenLifetimeSeconds: 5400,
      lastErrorCode: null,
    });
  });

  it('leaves the ciphertext of an entity readable by the code that decrypts it', () => {
    const entity = tokenEntity();

    expect(entity.accessToken).toBe(ACCESS);
    expect({ ...entity }.refreshToken).toBe(REFRESH);
    expect(stateEntity().codeVerifier).toBe(VERIFIER);
  });

  it('adds nothing a reader of a record can see: fields, keys, spreads and equality are unchanged', () => {
    const record = tokenRecord();
    const copy = { ...record, version: 4 };

    expect(record.accessToken).toBe(ACCESS);
    expect(Object.keys(record)).toEqual([
      'ownerId',
      'environment',
      'status',
      'accessToken',
      'refreshToken',
      'keyId',
      'expiresAt',
      'tokenLifetimeSeconds',
      'version',
      'connectedAt',
      'lastRefreshedAt',
      'lastUsedAt',
      'failureCount',
      'lastErrorCode',
      'lastErrorAt',
      'revokedAt',
    ]);
    expect(copy).toMatchObject({ accessToken: ACCESS, refreshToken: REFRESH, version: 4 });
    expect(record).toEqual({ ...record });
    expect(record).toStrictEqual({ ...record });
    expect(Object.entries(record)).toEqual(
      Object.entries(copy).map(([k, v]) => [k, k === 'version' ? 3 : v]),
    );
  });
});
