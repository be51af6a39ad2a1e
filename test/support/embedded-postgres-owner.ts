// A process that owns an embedded PostgreSQL, for test/embedded-postgres.e2e-spec.ts: starts one
// on the data directory given in argv, prints its URL and data directory as one JSON line, then
// waits to be killed.
import { startEmbeddedPostgres } from '../../sample/embedded-postgres.js';

const server = await startEmbeddedPostgres({ dataDir: process.argv[2], fast: true });
process.stdout.write(`${JSON.stringify({ url: server.url, dataDir: server.dataDir })}\n`);
setInterval(() => undefined, 60_000);
