import { describe, expect, it } from '@jest/globals';
import { HttpException } from '@nestjs/common';
import { ProcoreInvalidOwnerError } from '../errors/procore-invalid-owner.error.js';
import { ProcoreShutdownError } from '../errors/procore-shutdown.error.js';
import { ProcoreStorageError, ProcoreTokenPersistError } from '../errors/procore-storage.error.js';
import { ProcoreApiError } from '../errors/procore-api.error.js';
import { ProcoreCompanyDisconnectedError } from '../errors/procore-company-disconnected.error.js';
import { ProcoreConfigurationError } from '../errors/procore-configuration.error.js';
import { ProcoreInvalidCompanyIdError } from '../errors/procore-invalid-company-id.error.js';
import { ProcoreRateLimitedError } from '../errors/procore-rate-limited.error.js';
import { ProcoreReauthorizationRequiredError } from '../errors/procore-reauthorization-required.error.js';
import { ProcoreTokenRefreshError } from '../errors/procore-token-refresh.error.js';
import { procoreBadRequest, toProcoreHttpException } from './procore-http-errors.js';

describe('toProcoreHttpException', () => {
  it('answers an unusable owner id as 401 no_owner, without the error message', () => {
    const error = new ProcoreInvalidOwnerError(
      'The Procore owner id contains a control character (U+0000-U+001F or U+007F-U+009F): fix it.',
    );

    const answer = toProcoreHttpException(error, '/procore/oauth/authorize');

    expect(answer).toBeInstanceOf(HttpException);
    expect((answer as HttpException).getStatus()).toBe(401);
    expect((answer as HttpException).getResponse()).toEqual({
      statusCode: 401,
      error: 'Unauthorized',
      reason: 'no_owner',
      message: 'No signed-in user on this request: authenticate before using Procore.',
      authorizePath: '/procore/oauth/authorize',
    });
  });

  it.each([
    [
      'a storage failure',
      new ProcoreStorageError('u1', 'The token store failed (57P01).'),
      'storage_unavailable',
    ],
    [
      'a lost rotation',
      new ProcoreTokenPersistError('u1', 'could not be stored (57014).'),
      'storage_unavailable',
    ],
    ['a shutdown', new ProcoreShutdownError('a token refresh'), 'shutting_down'],
  ])(
    'answers %s as 503 with a fixed message and the cause kept for logs',
    (_label, error, reason) => {
      const answer = toProcoreHttpException(error, '/procore/oauth/authorize') as HttpException;
      expect(answer.getStatus()).toBe(503);
      expect(answer.getResponse()).toMatchObject({ statusCode: 503, reason });
      expect(JSON.stringify(answer.getResponse())).not.toContain('u1');
      expect(answer.cause).toBe(error);
    },
  );

  it.each([
    [400, 'Bad Request', 'invalid_company_id', () => new ProcoreInvalidCompanyIdError('x')],
    [
      401,
      'Unauthorized',
      'reauthorization_required',
      () =>
        new ProcoreReauthorizationRequiredError('u1', 'reauthorization_required', 'invalid_grant'),
    ],
    [
      403,
      'Forbidden',
      'company_disconnected',
      () => new ProcoreCompanyDisconnectedError({ ownerId: 'u1' }, '1001', new Date()),
    ],
    [
      429,
      'Too Many Requests',
      'rate_limited',
      () => new ProcoreRateLimitedError('GET', '/rest/v1.0/me', new Date(Date.now() + 5_000)),
    ],
    [
      500,
      'Internal Server Error',
      'configuration_error',
      () => new ProcoreConfigurationError('bad'),
    ],
    [
      502,
      'Bad Gateway',
      'procore_error',
      () => new ProcoreApiError(404, { method: 'GET', path: '/rest/v1.0/x' }, 'not found'),
    ],
    [
      503,
      'Service Unavailable',
      'procore_unavailable',
      () => new ProcoreTokenRefreshError('u1', 3, { cause: new Error('timeout') }),
    ],
  ])(
    'answers %i in the one body shape { statusCode, error, reason, message }',
    (status, statusText, reason, make) => {
      const answer = toProcoreHttpException(make(), '/procore/oauth/authorize') as HttpException;
      expect(answer.getStatus()).toBe(status);
      expect(answer.getResponse()).toMatchObject({
        statusCode: status,
        error: statusText,
        reason,
        message: expect.any(String),
      });
    },
  );

  it("answers the OAuth routes' 400s in the same shape, the problem as reason", () => {
    expect(procoreBadRequest('unknown_state', 'start again').getResponse()).toEqual({
      statusCode: 400,
      error: 'Bad Request',
      reason: 'unknown_state',
      message: 'start again',
    });
  });
});
