import { describe, expect, it } from '@jest/globals';
import { HttpException } from '@nestjs/common';
import { ProcoreInvalidOwnerError } from '../errors/procore-invalid-owner.error.js';
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
});
