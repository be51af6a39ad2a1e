import { registerProcoreSwaggerTarget } from './procore-swagger.js';

/** Options of `@ApiProcoreAuth()`. */
export interface ApiProcoreAuthOptions {
  /**
   * The handler calls Procore's API (`@ProcoreApi()`): also document 403 `company_disconnected`,
   * 429 `rate_limited` and 502 `procore_error`. Default `false`.
   */
  apiCalls?: boolean;
}

/**
 * Documents, for `@nestjs/swagger`, the answers the package gives on a route that uses
 * `ProcoreAuthGuard`, `@ProcoreToken()` or `@ProcoreApi()`: 401 (`no_owner`, `not_connected`,
 * `reauthorization_required`, with `authorizePath`) and 503, in the package's error body shape.
 * On a controller class or a handler. `@nestjs/swagger` stays optional: the responses are added
 * when `ProcoreAuthModule` is created, if it is installed.
 * @publicApi
 */
export function ApiProcoreAuth(
  options: ApiProcoreAuthOptions = {},
): ClassDecorator & MethodDecorator {
  return ((target: object, key?: string | symbol, descriptor?: PropertyDescriptor) => {
    registerProcoreSwaggerTarget({ target, key, descriptor, apiCalls: options.apiCalls === true });
  }) as ClassDecorator & MethodDecorator;
}
