import { describe, expect, it } from '@jest/globals';
import type { HttpAdapterHost } from '@nestjs/core';
import { ProcoreConfigurationError } from '../errors/procore-configuration.error.js';
import { ProcoreParamResolvers } from './procore-param-resolvers.js';

const hostOf = (server: object) =>
  ({ httpAdapter: { getInstance: () => server } }) as unknown as HttpAdapterHost;

describe('ProcoreParamResolvers', () => {
  it("finds the resolver of the request's Express app (req.app) or Fastify instance (request.server, or a child of it)", () => {
    const resolvers = new ProcoreParamResolvers<{ name: string }>('@ProcoreToken()');
    const expressApp = () => undefined;
    const fastify = {};
    resolvers.register({ name: 'express' }, hostOf(expressApp));
    resolvers.register({ name: 'fastify' }, hostOf(fastify));

    expect(resolvers.find({ app: expressApp }).name).toBe('express');
    expect(resolvers.find({ server: fastify }).name).toBe('fastify');
    expect(resolvers.find({ server: Object.create(fastify) as object }).name).toBe('fastify');
  });

  it('falls back to the only application of the process, and refuses to guess between several', () => {
    const resolvers = new ProcoreParamResolvers<{ name: string }>('@ProcoreToken()');
    const first = { name: 'first' };
    resolvers.register(first, undefined);
    expect(resolvers.find({ headers: {} }).name).toBe('first');

    resolvers.register({ name: 'second' }, undefined);
    expect(() => resolvers.find({ headers: {} })).toThrow(ProcoreConfigurationError);
    expect(() => resolvers.find({ headers: {} })).toThrow(/could not tell which of 2 applications/);

    resolvers.unregister(first);
    expect(resolvers.find(undefined).name).toBe('second');
  });

  it('with one application, answers without reading the request', () => {
    const resolvers = new ProcoreParamResolvers<{ name: string }>('@ProcoreToken()');
    const only = { name: 'only' };
    resolvers.register(
      only,
      hostOf(() => undefined),
    );
    const untouchable = new Proxy(
      {},
      {
        get() {
          throw new Error('the request was read');
        },
      },
    );
    expect(resolvers.find(untouchable)).toBe(only);
  });

  it('keeps matching requests to their own app once two were live, while one of them closes', () => {
    const resolvers = new ProcoreParamResolvers<{ name: string }>('@ProcoreToken()');
    const appA = () => undefined;
    const appB = () => undefined;
    const a = { name: 'a' };
    const b = { name: 'b' };
    resolvers.register(a, hostOf(appA));
    resolvers.register(b, hostOf(appB));
    // b's shutdown hooks run (it is unregistered) while its server still answers requests.
    resolvers.unregister(b);
    expect(resolvers.find({ app: appB })).toBe(b);
    expect(resolvers.find({ app: appA })).toBe(a);
    // Once the process has no app left, the next single app gets the fast path again.
    resolvers.unregister(a);
    const c = { name: 'c' };
    resolvers.register(
      c,
      hostOf(() => undefined),
    );
    expect(resolvers.find({ app: appB })).toBe(c);
  });

  it('says what to do when no application registered one', () => {
    const resolvers = new ProcoreParamResolvers<object>('@ProcoreApi()');
    expect(() => resolvers.find({})).toThrow(
      '@ProcoreApi() is used, but ProcoreAuthModule is not initialised in this application',
    );
  });
});
