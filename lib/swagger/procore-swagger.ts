import { Logger } from '@nestjs/common';
import { ProcoreOAuthController } from '../http/procore-oauth.controller.js';
import {
  CALLBACK_BAD_REQUEST_REASONS,
  UNAUTHORIZED_SCHEMA,
  UNAVAILABLE_SCHEMA,
  procoreErrorBodySchema,
} from './procore-error-body.schema.js';

type Decorator = (target: object, key?: string | symbol, descriptor?: PropertyDescriptor) => void;

/** The few `@nestjs/swagger` decorators used, typed loosely: it is an optional peer. */
interface Swagger {
  ApiOperation(options: Record<string, unknown>): Decorator;
  ApiQuery(options: Record<string, unknown>): Decorator;
  ApiResponse(options: Record<string, unknown>): Decorator;
  ApiTags(...tags: string[]): Decorator;
}

/** Where `@ApiProcoreAuth()` was put: a class, or a method of one. */
interface Target {
  target: object;
  key?: string | symbol;
  descriptor?: PropertyDescriptor;
  apiCalls: boolean;
}

const pending: Target[] = [];
let documentedRoutes = false;
let loading: Promise<Swagger | undefined> | undefined;
/** Set once `@nestjs/swagger` was loaded: later targets are documented at once. */
let loaded: Swagger | undefined;

/** Records a target; documented once `@nestjs/swagger` is found (see `applyProcoreSwaggerDocs`). */
export function registerProcoreSwaggerTarget(target: Target): void {
  if (loaded) documentTarget(loaded, target);
  else pending.push(target);
}

function loadSwagger(): Promise<Swagger | undefined> {
  loading ??= import('@nestjs/swagger').then(
    (swagger) => swagger as unknown as Swagger,
    () => undefined,
  );
  return loading;
}

function apply(decorator: Decorator, target: Target): void {
  if (target.key === undefined) decorator(target.target);
  else decorator(target.target, target.key, target.descriptor);
}

const API_CALL_RESPONSES = [
  {
    status: 403,
    description: 'The Procore company removed the app.',
    schema: procoreErrorBodySchema(403, ['company_disconnected']),
  },
  {
    status: 429,
    description: "Procore's rate limit for this user is spent (see the Retry-After header).",
    schema: procoreErrorBodySchema(429, ['rate_limited'], {
      retryAt: { type: 'string', format: 'date-time' },
    }),
  },
  {
    status: 502,
    description: 'Procore answered an error.',
    schema: procoreErrorBodySchema(502, ['procore_error'], {
      procoreStatus: { type: 'integer', example: 404 },
    }),
  },
];

/**
 * Adds the OpenAPI description of the package's answers: to every target of `@ApiProcoreAuth()`
 * and to the mounted OAuth routes. Does nothing without `@nestjs/swagger`. Runs while the module
 * is created (a provider factory), so before the app calls `SwaggerModule.createDocument()`.
 */
export async function applyProcoreSwaggerDocs(): Promise<boolean> {
  const swagger = await loadSwagger();
  if (!swagger) return false;
  try {
    loaded = swagger;
    for (const target of pending.splice(0)) documentTarget(swagger, target);
    if (!documentedRoutes) {
      documentedRoutes = true;
      documentOAuthRoutes(swagger);
    }
    return true;
  } catch (error) {
    // Documentation must never stop the app (e.g. a @nestjs/swagger without one of these decorators).
    new Logger('ProcoreAuth').warn(
      `The OpenAPI description of the Procore routes is incomplete: @nestjs/swagger refused it (${(error as Error)?.name ?? 'error'}).`,
    );
    return false;
  }
}

/** The answers of a route (or of every route of a controller) that uses the guard or decorators. */
function documentTarget(swagger: Swagger, target: Target): void {
  apply(
    swagger.ApiResponse({
      status: 401,
      description: 'The user has no usable Procore connection: send them to authorizePath.',
      schema: UNAUTHORIZED_SCHEMA,
    }),
    target,
  );
  apply(
    swagger.ApiResponse({
      status: 503,
      description: 'Procore or the token store could not be reached: try again shortly.',
      schema: UNAVAILABLE_SCHEMA,
    }),
    target,
  );
  if (target.apiCalls) {
    for (const response of API_CALL_RESPONSES) apply(swagger.ApiResponse(response), target);
  }
}

/** The parameters and answers of `GET <path>/authorize` and `GET <path>/callback`. */
function documentOAuthRoutes(swagger: Swagger): void {
  const prototype = ProcoreOAuthController.prototype as unknown as Record<string, unknown>;
  const method = (key: 'authorize' | 'callback'): Target => ({
    target: prototype,
    key,
    descriptor: Object.getOwnPropertyDescriptor(prototype, key),
    apiCalls: false,
  });
  apply(swagger.ApiTags('Procore OAuth'), { target: ProcoreOAuthController, apiCalls: false });

  const authorize = method('authorize');
  for (const decorator of [
    swagger.ApiOperation({
      summary: "Connect the signed-in user's Procore account",
      description:
        "Redirects to Procore's authorization page for the request's owner. Procore then redirects to the callback route.",
    }),
    swagger.ApiQuery({
      name: 'returnTo',
      required: false,
      type: String,
      description: 'A path on this site to land on once connected (same origin, e.g. /projects).',
    }),
    swagger.ApiResponse({
      status: 302,
      description: "Redirect to Procore's authorize URL (sets the flow's binding cookie).",
    }),
    swagger.ApiResponse({
      status: 200,
      description:
        "Asked for JSON (Accept: application/json without text/html): Procore's authorize URL, for the app to send the browser to.",
      schema: {
        type: 'object',
        required: ['url'],
        properties: { url: { type: 'string', format: 'uri' } },
      },
    }),
    swagger.ApiResponse({
      status: 400,
      description: 'returnTo is not a path on this site.',
      schema: procoreErrorBodySchema(400, ['invalid_return_to']),
    }),
    swagger.ApiResponse({
      status: 401,
      description: 'No signed-in user on this request.',
      schema: UNAUTHORIZED_SCHEMA,
    }),
    swagger.ApiResponse({
      status: 503,
      description: 'The token store could not be reached.',
      schema: UNAVAILABLE_SCHEMA,
    }),
  ]) {
    apply(decorator, authorize);
  }

  const callback = method('callback');
  for (const decorator of [
    swagger.ApiOperation({
      summary: 'Complete the Procore connection (Procore redirects here)',
      description:
        'Verifies the one-time state, exchanges the code and stores the connection; then redirects to returnTo, or answers the connection.',
    }),
    swagger.ApiQuery({
      name: 'code',
      required: false,
      type: String,
      description: "Procore's authorization code.",
    }),
    swagger.ApiQuery({
      name: 'state',
      required: false,
      type: String,
      description: 'The one-time state issued by the authorize route.',
    }),
    swagger.ApiQuery({
      name: 'error',
      required: false,
      type: String,
      description: 'Set by Procore when the user did not authorize the app (e.g. access_denied).',
    }),
    swagger.ApiResponse({
      status: 200,
      description: 'Connected (no returnTo was given).',
      schema: {
        type: 'object',
        required: ['connected', 'ownerId', 'status', 'environment', 'expiresAt'],
        properties: {
          connected: { type: 'boolean', example: true },
          ownerId: { type: 'string' },
          status: { type: 'string', example: 'active' },
          environment: { type: 'string', example: 'production' },
          expiresAt: { type: 'string', format: 'date-time' },
        },
      },
    }),
    swagger.ApiResponse({ status: 302, description: 'Connected: redirect to returnTo.' }),
    swagger.ApiResponse({
      status: 400,
      description: 'A bad callback: nothing was stored.',
      schema: procoreErrorBodySchema(400, CALLBACK_BAD_REQUEST_REASONS),
    }),
    swagger.ApiResponse({
      status: 503,
      description: 'Procore or the token store could not be reached.',
      schema: UNAVAILABLE_SCHEMA,
    }),
  ]) {
    apply(decorator, callback);
  }
}
