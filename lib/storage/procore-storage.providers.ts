import type { Provider } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import type { ResolvedProcoreAuthOptions } from '../config/resolve-procore-auth-options.js';
import { ProcoreConfigurationError } from '../errors/procore-configuration.error.js';
import type { ProcoreStorageOptions } from '../interfaces/procore-storage-options.interface.js';
import { PROCORE_AUTH_OPTIONS } from '../procore-auth.constants.js';
import { dataSourceResolver } from './data-source.resolver.js';
import { ProcoreOAuthStateStore } from './procore-oauth-state.store.js';
import { ProcoreTokenStore } from './procore-token.store.js';
import { TypeOrmProcoreOAuthStateStore } from './typeorm-procore-oauth-state.store.js';
import { TypeOrmProcoreTokenStore } from './typeorm-procore-token.store.js';

/** Injection token: `true` when the app gave its own token store (`storage.tokens`). Internal. */
export const PROCORE_CUSTOM_TOKEN_STORE = Symbol('PROCORE_CUSTOM_TOKEN_STORE');

const TOKEN_STORE_METHODS = [
  'find',
  'upsert',
  'updateIfVersion',
  'withLock',
  'touch',
  'claimDue',
  'findWithOtherKey',
] as const;
const STATE_STORE_METHODS = ['save', 'consume'] as const;

/** Fails at registration, naming the setting, when a store is neither a class nor a store. */
function assertStore(name: string, value: unknown, methods: readonly string[]): void {
  const target: unknown =
    typeof value === 'function' ? (value as { prototype: unknown }).prototype : value;
  const missing = methods.filter(
    (method) =>
      !target ||
      typeof target !== 'object' ||
      typeof (target as Record<string, unknown>)[method] !== 'function',
  );
  if (missing.length > 0) {
    throw new ProcoreConfigurationError(
      `storage.${name} is invalid: give an instance or a class of a store (missing ${missing.join(', ')}); extend the abstract class exported by nestjs-procore-auth.`,
    );
  }
}

function storeProvider<T>(
  token: abstract new (...args: never[]) => T,
  given: T | (new (...args: never[]) => T) | undefined,
  fallback: Provider,
): Provider {
  if (given === undefined) return fallback;
  return typeof given === 'function'
    ? { provide: token, useClass: given as new (...args: never[]) => T }
    : { provide: token, useValue: given };
}

/** The two store providers: the app's (`storage`) or the TypeORM defaults. */
export function procoreStorageProviders(storage: ProcoreStorageOptions | undefined): Provider[] {
  if (storage?.tokens !== undefined) assertStore('tokens', storage.tokens, TOKEN_STORE_METHODS);
  if (storage?.states !== undefined) assertStore('states', storage.states, STATE_STORE_METHODS);
  return [
    storeProvider(ProcoreTokenStore, storage?.tokens, {
      provide: ProcoreTokenStore,
      useFactory: (options: ResolvedProcoreAuthOptions, moduleRef: ModuleRef) =>
        new TypeOrmProcoreTokenStore(dataSourceResolver(options.dataSource, moduleRef)),
      inject: [PROCORE_AUTH_OPTIONS, ModuleRef],
    }),
    storeProvider(ProcoreOAuthStateStore, storage?.states, {
      provide: ProcoreOAuthStateStore,
      useFactory: (options: ResolvedProcoreAuthOptions, moduleRef: ModuleRef) =>
        new TypeOrmProcoreOAuthStateStore(
          dataSourceResolver(options.dataSource, moduleRef),
          options.maxPendingStatesPerOwner,
        ),
      inject: [PROCORE_AUTH_OPTIONS, ModuleRef],
    }),
    { provide: PROCORE_CUSTOM_TOKEN_STORE, useValue: storage?.tokens !== undefined },
  ];
}
