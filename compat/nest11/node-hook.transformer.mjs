// Jest transformer, under `npm run test:nest11`, for test/support/global-setup.ts and
// global-teardown.ts: those run in Node itself (Jest's globalSetup) and inside the CommonJS test
// modules (test-database.ts imports global-setup.ts), and may use `import.meta.url` and import()
// of TypeScript files through the repository's loader hooks. They are compiled to CommonJS with
// `import.meta.url` spelled for CommonJS and import() kept a real import(), which the hooks see.
// (A second ts-jest entry with other options cannot do this: ts-jest shares one configuration
// per Jest project.)
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import ts from 'typescript';

/** Jest's cache must change when this file or TypeScript does. */
const SELF = createHash('sha256')
  .update(readFileSync(new URL(import.meta.url)))
  .update(ts.version)
  .digest('hex');

export default {
  getCacheKey(source, fileName) {
    return createHash('sha256').update(SELF).update(fileName).update(source).digest('hex');
  },
  process(source, fileName) {
    const { outputText } = ts.transpileModule(
      source.replaceAll('import.meta.url', "require('node:url').pathToFileURL(__filename).href"),
      {
        // .cts: CommonJS output in which NodeNext keeps import() as it is.
        fileName: fileName.replace(/\.ts$/, '.cts'),
        compilerOptions: {
          module: ts.ModuleKind.NodeNext,
          moduleResolution: ts.ModuleResolutionKind.NodeNext,
          target: ts.ScriptTarget.ES2022,
          esModuleInterop: true,
        },
      },
    );
    return { code: outputText };
  },
};
