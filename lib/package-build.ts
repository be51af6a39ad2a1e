/**
 * The package ships an ESM build (`dist/`) and a CommonJS one (`dist/cjs/`). A process should
 * load one of them: two copies have distinct classes (services, modules, errors, entities) and
 * injection tokens, which shows up as Nest failing to resolve a provider or `instanceof` being
 * false. Each build records itself on load, and a process that loads both gets one warning
 * saying so.
 */
const LOADED_BUILDS = Symbol.for('nestjs-procore-auth.loaded-builds');

/**
 * Only CommonJS gives a module its own `__filename` (a global `__filename`, as `node -e` sets,
 * names something else): the same source tells the two builds apart.
 */
export const PACKAGE_BUILD: 'ESM' | 'CommonJS' =
  typeof __filename === 'string' && /package-build\.[cm]?[jt]s$/.test(__filename)
    ? 'CommonJS'
    : 'ESM';

const holder = globalThis as typeof globalThis & {
  [LOADED_BUILDS]?: { builds: Set<string>; warned: boolean };
};
const state = (holder[LOADED_BUILDS] ??= { builds: new Set(), warned: false });
state.builds.add(PACKAGE_BUILD);
if (state.builds.size > 1 && !state.warned) {
  state.warned = true;
  process.emitWarning(
    'nestjs-procore-auth was loaded twice in this process, as ESM (import) and as CommonJS (require): ' +
      'their classes and injection tokens differ. Load it one way (see "Which build your app gets" in its README).',
    { code: 'PROCORE_AUTH_DUAL_PACKAGE' },
  );
}
