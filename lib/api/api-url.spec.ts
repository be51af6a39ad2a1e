import { describe, expect, it } from '@jest/globals';
import { ProcoreUnsafeUrlError } from '../errors/procore-unsafe-url.error.js';
import { resolveApiUrl } from './api-url.js';
import { parseLinkHeader } from './link-header.js';

const base = new URL('https://api.procore.test');

describe('resolveApiUrl', () => {
  it('puts a path and its query on the API host', () => {
    const url = resolveApiUrl(base, '/rest/v1.0/projects', {
      page: 2,
      per_page: 100,
      'filters[id][]': [1, 2],
      skipped: undefined,
      none: null,
      big: 9007199254740993n,
    });
    expect(url.toString()).toBe(
      'https://api.procore.test/rest/v1.0/projects?page=2&per_page=100&filters%5Bid%5D%5B%5D=1&filters%5Bid%5D%5B%5D=2&big=9007199254740993',
    );
  });

  it('accepts an absolute URL on the same origin (a Link header target)', () => {
    expect(resolveApiUrl(base, 'https://api.procore.test/rest/v1.0/projects?page=3').search).toBe(
      '?page=3',
    );
  });

  it.each([
    'https://evil.example/rest/v1.0/me',
    'http://api.procore.test/rest/v1.0/me',
    'https://api.procore.test:8443/rest/v1.0/me',
    '//evil.example/rest/v1.0/me',
    '/\\evil.example',
    'rest/v1.0/me',
    'javascript:alert(1)',
    '/rest/v1.0/me\r\nX-Injected: 1',
    'https://api.procore.test.evil.example/rest',
  ])('refuses %j without naming its query', (target) => {
    expect(() => resolveApiUrl(base, target)).toThrow(ProcoreUnsafeUrlError);
  });

  it('keeps calls under a base path and refuses climbing out of it', () => {
    const prefixed = new URL('https://gateway.test/procore/');
    expect(resolveApiUrl(prefixed, '/rest/v1.0/me').pathname).toBe('/procore/rest/v1.0/me');
    expect(() => resolveApiUrl(prefixed, 'https://gateway.test/other/rest')).toThrow(
      ProcoreUnsafeUrlError,
    );
  });
});

describe('parseLinkHeader', () => {
  it('reads every relation of a Procore Link header', () => {
    const links = parseLinkHeader(
      '<https://api.procore.test/rest/v1.0/projects?page=1&per_page=2>; rel="first", ' +
        '<https://api.procore.test/rest/v1.0/projects?page=1&per_page=2>; rel="prev", ' +
        '<https://api.procore.test/rest/v1.0/projects?page=3&per_page=2>; rel="next", ' +
        '<https://api.procore.test/rest/v1.0/projects?page=9&per_page=2>; rel="last"',
    );
    expect(links.get('next')).toBe('https://api.procore.test/rest/v1.0/projects?page=3&per_page=2');
    expect(links.get('last')).toBe('https://api.procore.test/rest/v1.0/projects?page=9&per_page=2');
    expect(links.get('first')).toBe(links.get('prev'));
  });

  it('ignores malformed parts and missing headers', () => {
    expect(parseLinkHeader(undefined).size).toBe(0);
    expect([...parseLinkHeader('garbage, <x>; foo=bar, <y>; rel=next').entries()]).toEqual([
      ['next', 'y'],
    ]);
  });
});
