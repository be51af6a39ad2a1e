import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { inspect } from 'node:util';
import { ConsoleLogger } from '@nestjs/common';
import { ProcoreTokenEntity, ProcoreTokenStore } from 'nestjs-procore-auth';
import { FakeProcoreServer } from 'nestjs-procore-auth/testing';
import {
  connectOwner,
  createProcoreTestApp,
  expireStoredToken,
  fakeProcoreOptions,
  migrate,
  rawRow,
  type ProcoreTestApp,
} from './support/procore-test-app.js';
import { createTestDatabase, type TestDatabase } from './support/test-database.js';

/** What Nest's ConsoleLogger writes when `value` is the message and when it is a parameter. */
function printedByNestLogger(value: unknown): string {
  const written: string[] = [];
  const capture = (chunk: unknown): boolean => {
    written.push(String(chunk));
    return true;
  };
  const stdout = jest.spyOn(process.stdout, 'write').mockImplementation(capture);
  const stderr = jest.spyOn(process.stderr, 'write').mockImplementation(capture);
  try {
    for (const logger of [
      new ConsoleLogger('Store'),
      new ConsoleLogger('Store', { json: true, colors: false }),
    ]) {
      logger.log(value);
      logger.warn('refresh failed for', value);
      logger.error('refresh failed for', value);
    }
  } finally {
    stdout.mockRestore();
    stderr.mockRestore();
  }
  return written.join('');
}

describe('stored connections read back from PostgreSQL print without their ciphertext', () => {
  const ownerId = 'printing-owner';
  let database: TestDatabase;
  let fake: FakeProcoreServer;
  let instance: ProcoreTestApp;
  let ciphertexts: string[];

  beforeAll(async () => {
    database = await createTestDatabase('printing');
    await migrate(database.url);
    fake = await FakeProcoreServer.start();
    instance = await createProcoreTestApp({
      databaseUrl: database.url,
      // No access-token cache, so the last test reads (and refreshes from) the stored record.
      options: fakeProcoreOptions(fake, { cache: { maxEntries: 0 } }),
    });
    await connectOwner(instance.service, ownerId);
    const row = await rawRow(instance.dataSource, ownerId);
    ciphertexts = [row['access_token'] as string, row['refresh_token'] as string];
  });
  afterAll(async () => {
    await instance?.close();
    await fake?.close();
    await database?.drop();
  });

  const printers: [string, (value: unknown) => string][] = [
    ['util.inspect', (value) => inspect(value, { depth: null })],
    ['JSON.stringify', (value) => JSON.stringify({ value })],
    ["Nest's ConsoleLogger", printedByNestLogger],
  ];

  it.each(printers)('a ProcoreTokenStore record, through %s', async (_how, print) => {
    const record = await instance.app.get(ProcoreTokenStore).find(ownerId);

    expect(record?.accessToken).toBe(ciphertexts[0]);
    expect({ ...record }.refreshToken).toBe(ciphertexts[1]);
    const printed = print(record);
    expect(printed).toContain('[redacted]');
    expect(printed).toContain(ownerId);
    for (const ciphertext of ciphertexts) expect(printed).not.toContain(ciphertext);
  });

  it.each(printers)('a ProcoreTokenEntity, through %s', async (_how, print) => {
    const entity = await instance.dataSource
      .getRepository(ProcoreTokenEntity)
      .findOneByOrFail({ ownerId });

    expect(entity.accessToken).toBe(ciphertexts[0]);
    const printed = print(entity);
    expect(printed).toContain('[redacted]');
    expect(printed).toContain(ownerId);
    for (const ciphertext of ciphertexts) expect(printed).not.toContain(ciphertext);
  });

  it('still refreshes and serves tokens from the redacted records', async () => {
    await expireStoredToken(instance.dataSource, fake, ownerId);

    const token = await instance.service.getAccessToken(ownerId);

    expect(fake.isAccessTokenValid(token)).toBe(true);
    expect((await rawRow(instance.dataSource, ownerId))['version']).toBe(2);
  });
});
