import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import request from 'supertest';
import { FakeProcoreServer } from 'nestjs-procore-auth/testing';
import {
  createHttpTestApp,
  ownerFromHeader,
  type HttpTestApp,
} from './support/procore-http-app.js';
import { connectOwner, fakeProcoreOptions, migrate, rawRow } from './support/procore-test-app.js';
import { createTestDatabase, type TestDatabase } from './support/test-database.js';

/**
 * Property: whatever a client sends to the callback route — any parameters, repeated, nested,
 * malformed percent-encoding, odd cookies — the answer is a clean 4xx (never a 5xx), it echoes
 * nothing it was sent, and the signed-in user's stored connection is untouched.
 */
const KEYS = ['code', 'state', 'error', 'returnTo', 'state[a]', 'code[]', 'error_description'];
const RAW_VALUES = ['%C4%81', '%ZZ', '%00', '%E0%A4%A', '..%2F..%2F', '%2F%2Fevil.example', ''];

const value = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 40 }).map(encodeURIComponent),
  fc.constantFrom(...RAW_VALUES),
  fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/),
);
const queryString = fc
  .array(
    fc.tuple(
      fc.oneof(
        fc.constantFrom(...KEYS),
        fc.string({ unit: 'grapheme', maxLength: 8 }).map(encodeURIComponent),
      ),
      value,
    ),
    {
      maxLength: 6,
    },
  )
  .map((pairs) => pairs.map(([key, val]) => `${key}=${val}`).join('&'));
const cookie = fc.oneof(
  fc.constant(undefined),
  fc.stringMatching(/^procore_oauth_[0-9a-f]{16}=[A-Za-z0-9_-]{0,60}$/),
  fc.string({ unit: 'grapheme-ascii', maxLength: 60 }),
);

describe.each(['express', 'fastify'] as const)(
  'callback parameters on %s (property)',
  (platform) => {
    let database: TestDatabase;
    let fake: FakeProcoreServer;
    let http: HttpTestApp;
    const victim = 'victim-1';

    beforeAll(async () => {
      database = await createTestDatabase(`callback_properties_${platform}`);
      await migrate(database.url);
    });

    beforeEach(async () => {
      fake = await FakeProcoreServer.start();
      http = await createHttpTestApp({
        platform,
        databaseUrl: database.url,
        fake,
        options: fakeProcoreOptions(fake, { ownerResolver: ownerFromHeader }),
        extendedQueryParser: true,
      });
    });

    afterEach(async () => {
      await http.close();
      await fake.close();
    });

    afterAll(async () => {
      await database.drop();
    });

    it('answers every crafted callback with a 4xx, echoes nothing, and leaves the connection as it was', async () => {
      await connectOwner(http.service, victim);
      const dataSource = http.app.get((await import('typeorm')).DataSource);
      const before = await rawRow(dataSource, victim);
      // A pending flow of the victim, so some runs carry a real state.
      await http.service.getAuthorizationUrl(victim);
      const server = http.app.getHttpServer();

      await fc.assert(
        fc.asyncProperty(queryString, cookie, async (query, cookieHeader) => {
          let call = request(server)
            .get(`/procore/oauth/callback?${query}`)
            .set('x-user-id', victim);
          if (cookieHeader !== undefined) call = call.set('cookie', cookieHeader);
          const answer = await call;
          expect(answer.status).toBeGreaterThanOrEqual(400);
          expect(answer.status).toBeLessThan(500);
          const body = JSON.stringify(answer.body);
          for (const [, raw] of new URLSearchParams(query)) {
            if (raw.length >= 12) expect(body).not.toContain(raw);
          }
        }),
        { numRuns: 60 },
      );

      expect(await rawRow(dataSource, victim)).toEqual(before);
    });
  },
);
