/**
 * Jest globalTeardown: stops the embedded PostgreSQL that global-setup.ts started (if any) and
 * removes its data directory. A server from DATABASE_URL or the local machine is left alone.
 *
 * Like global-setup.ts this file is loaded through plain `require`, so it does not import its
 * sibling; the key below must match the one in global-setup.ts.
 */
const EMBEDDED_KEY = Symbol.for('nestjs-procore-auth.test.embedded-postgres');

interface EmbeddedPostgresServer {
  stop(): Promise<void>;
}

type GlobalWithEmbedded = typeof globalThis & { [EMBEDDED_KEY]?: EmbeddedPostgresServer };

export default async function globalTeardown(): Promise<void> {
  const holder = globalThis as GlobalWithEmbedded;
  const server = holder[EMBEDDED_KEY];
  delete holder[EMBEDDED_KEY];
  await server?.stop();
}
