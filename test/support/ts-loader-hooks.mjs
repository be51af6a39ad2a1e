import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const compilerOptions = {
  module: ts.ModuleKind.ESNext,
  target: ts.ScriptTarget.ES2022,
  experimentalDecorators: true,
  emitDecoratorMetadata: true,
  sourceMap: false,
};

/**
 * Under `npm run test:nest11` the child loads the NestJS 11 line, as the test process does
 * (jest.config.ts maps the same packages to compat/nest11).
 */
const nest11Parent =
  process.env.PROCORE_TEST_NEST_LINE === '11'
    ? new URL('../../compat/nest11/package.json', import.meta.url).href
    : undefined;
const NEST_LINE_PACKAGE = /^(@nestjs\/[^/]+|typeorm)(\/|$)/;

/** `./x.js` written in a .ts file of ours points at `./x.ts`. */
export async function resolve(specifier, context, nextResolve) {
  if (nest11Parent && NEST_LINE_PACKAGE.test(specifier)) {
    return nextResolve(specifier, { ...context, parentURL: nest11Parent });
  }
  const parent = context.parentURL ?? '';
  if (parent.endsWith('.ts') && specifier.startsWith('.') && specifier.endsWith('.js')) {
    const candidate = new URL(specifier.replace(/\.js$/, '.ts'), parent);
    if (existsSync(fileURLToPath(candidate))) return { url: candidate.href, shortCircuit: true };
  }
  return nextResolve(specifier, context);
}

export async function load(url, context, nextLoad) {
  if (!url.endsWith('.ts')) return nextLoad(url, context);
  const source = readFileSync(fileURLToPath(url), 'utf8');
  const { outputText } = ts.transpileModule(source, {
    compilerOptions,
    fileName: fileURLToPath(url),
  });
  return { format: 'module', source: outputText, shortCircuit: true };
}
