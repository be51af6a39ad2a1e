import type {
  ProcoreBadRequestReason,
  ProcoreErrorReason,
  ProcoreUnauthorizedReason,
} from '../http/procore-http-errors.js';

/** An OpenAPI schema object, as `@nestjs/swagger` takes it (kept loose: swagger is optional). */
export type ProcoreOpenApiSchema = Record<string, unknown>;

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  429: 'Too Many Requests',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

/** The schema of `ProcoreErrorBody` for one status and the reasons it can carry. */
export function procoreErrorBodySchema(
  status: number,
  reasons: readonly ProcoreErrorReason[],
  extra: ProcoreOpenApiSchema = {},
): ProcoreOpenApiSchema {
  return {
    title: 'ProcoreErrorBody',
    type: 'object',
    required: ['statusCode', 'error', 'reason', 'message', ...Object.keys(extra)],
    properties: {
      statusCode: { type: 'integer', example: status },
      error: { type: 'string', example: STATUS_TEXT[status] },
      reason: { type: 'string', enum: [...reasons], example: reasons[0] },
      message: { type: 'string' },
      ...extra,
    },
  };
}

export const UNAUTHORIZED_REASONS: readonly ProcoreUnauthorizedReason[] = [
  'no_owner',
  'not_connected',
  'reauthorization_required',
];

export const UNAVAILABLE_REASONS: readonly ProcoreErrorReason[] = [
  'procore_unavailable',
  'storage_unavailable',
  'shutting_down',
];

export const CALLBACK_BAD_REQUEST_REASONS: readonly ProcoreBadRequestReason[] = [
  'missing_state',
  'unknown_state',
  'expired_state',
  'owner_mismatch',
  'missing_code',
  'access_denied',
  'malformed_callback',
  'code_rejected',
  'browser_mismatch',
];

/** The 401 answer of the guard, the decorators and the authorize route. */
export const UNAUTHORIZED_SCHEMA = procoreErrorBodySchema(401, UNAUTHORIZED_REASONS, {
  authorizePath: { type: 'string', example: '/procore/oauth/authorize' },
});

export const UNAVAILABLE_SCHEMA = procoreErrorBodySchema(503, UNAVAILABLE_REASONS);
