import { describe, expect, it } from '@jest/globals';
import { HttpException } from '@nestjs/common';
import { ProcoreInvalidOwnerError } from '../errors/procore-invalid-owner.error.js';
import { ProcoreShutdownError } from '../errors/procore-shutdown.error.js';
import { ProcoreStorageError, ProcoreTokenPersistError } from '../errors/procore-storage.error.js';
import { toProcoreHttpException } from './procore-http-errors.js';

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
});
