// A minimal ESM loader for child processes spawned by the tests (the SIGKILL test runs the
// library in a separate process): it transpiles the repository's .ts files on the fly with
// TypeScript, per file, keeping decorator metadata, and maps `./x.js` imports to `./x.ts`.
// Usage: node --import ./test/support/ts-loader.mjs test/support/some-child.ts
import { register } from 'node:module';

if (!process.env.__PROCORE_TS_LOADER_HOOKS) {
  process.env.__PROCORE_TS_LOADER_HOOKS = '1';
  register('./ts-loader-hooks.mjs', import.meta.url);
}
