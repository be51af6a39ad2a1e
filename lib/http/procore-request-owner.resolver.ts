import { Inject, Injectable } from '@nestjs/common';
import type { ResolvedProcoreAuthOptions } from '../config/resolve-procore-auth-options.js';
import { PROCORE_AUTH_OPTIONS } from '../procore-auth.constants.js';

/**
 * Finds the owner of a request: the one place `ProcoreAuthGuard`, `@ProcoreToken()`,
 * `@ProcoreApi()` and the OAuth routes ask, so they can never disagree. By default it calls the
 * `ownerResolver` option (`req.user.id`); for a GraphQL resolver, the request is the one in the
 * GraphQL context (`context.req`).
 *
 * To change how owners are found, set the `ownerResolver` option (with `forRootAsync`, its
 * factory can inject what the function needs), or replace this provider in a test:
 * `Test.createTestingModule(...).overrideProvider(ProcoreRequestOwnerResolver).useValue(...)`.
 * A subclass overrides `findOwner`.
 * @publicApi
 */
@Injectable()
export class ProcoreRequestOwnerResolver {
  constructor(
    @Inject(PROCORE_AUTH_OPTIONS) protected readonly options: ResolvedProcoreAuthOptions,
  ) {}

  /** The owner id of the request as a string, or `undefined` when it has none. */
  resolve(request: unknown): string | undefined {
    const owner: unknown = this.findOwner(request);
    if (typeof owner === 'string') return owner === '' ? undefined : owner;
    // NaN, Infinity or 2^53+ would become the owner "NaN" or a rounded id: treat as no owner.
    if (typeof owner === 'number') return Number.isSafeInteger(owner) ? String(owner) : undefined;
    // A bigint id (an ORM's BIGINT column) is exact in decimal.
    if (typeof owner === 'bigint') return String(owner);
    // Anything else is not an id: an object (`req => req.user` instead of `req.user.id`) would
    // become "[object Object]", one owner shared by every user; `true` the owner "true".
    return undefined;
  }

  /** The raw owner of the request; by default the `ownerResolver` option. */
  protected findOwner(request: unknown): string | number | null | undefined {
    return this.options.ownerResolver(request);
  }
}
