import { describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { TokenCipher } from '../crypto/token-cipher.js';
import {
  BROWSER_BINDING_KEY_PURPOSE,
  OAuthBrowserBinding,
  browserBindingAttributes,
  parseCookieHeader,
} from './oauth-browser-binding.js';

const key = () => randomBytes(32).toString('base64');
const STATE = randomBytes(32).toString('base64url');

describe('TokenCipher.deriveKey', () => {
  it('derives a stable 32-byte key per purpose that is not the encryption key', () => {
    const encryptionKey = key();
    const cipher = new TokenCipher(encryptionKey);
    const derived = cipher.deriveKey(BROWSER_BINDING_KEY_PURPOSE);

    expect(derived).toHaveLength(32);
    expect(new TokenCipher(encryptionKey).deriveKey(BROWSER_BINDING_KEY_PURPOSE)).toEqual(derived);
    expect(cipher.deriveKey('another purpose')).not.toEqual(derived);
    expect(new TokenCipher(key()).deriveKey(BROWSER_BINDING_KEY_PURPOSE)).not.toEqual(derived);
    expect(derived).not.toEqual(Buffer.from(encryptionKey, 'base64'));
  });

  it('derives from the current key, not from previous ones', () => {
    const previous = key();
    const current = key();
    expect(new TokenCipher(current, [previous]).deriveKey('x')).toEqual(
      new TokenCipher(current).deriveKey('x'),
    );
  });
});

describe('parseCookieHeader', () => {
  it('reads name=value pairs, unquotes values and keeps every value of a repeated name', () => {
    const cookies = parseCookieHeader('a=1; b="two"; junk; a=3;c=; =x');
    expect(cookies.get('a')).toEqual(['1', '3']);
    expect(cookies.get('b')).toEqual(['two']);
    expect(cookies.get('c')).toEqual(['']);
    expect(cookies.has('junk')).toBe(false);
    expect(cookies.has('')).toBe(false);
  });

  it('accepts an array header and ignores anything that is not a string', () => {
    expect(parseCookieHeader(['a=1', 'b=2']).get('b')).toEqual(['2']);
    expect(parseCookieHeader(undefined).size).toBe(0);
    expect(parseCookieHeader({ a: 1 }).size).toBe(0);
  });
});

describe('browserBindingAttributes', () => {
  it("takes Path from the redirect URI's path and Secure from https", () => {
    expect(browserBindingAttributes('https://app.example/api/procore/oauth/callback', 600)).toEqual(
      { path: '/api/procore/oauth/callback', secure: true, maxAgeSeconds: 600 },
    );
    expect(browserBindingAttributes('http://127.0.0.1:3000/cb?x=1', 60)).toEqual({
      path: '/cb',
      secure: false,
      maxAgeSeconds: 60,
    });
  });

  it('falls back to / for a path a cookie attribute cannot carry', () => {
    expect(browserBindingAttributes('https://app.example/a;b/callback', 600).path).toBe('/');
  });
});

describe('OAuthBrowserBinding', () => {
  const binding = new OAuthBrowserBinding(randomBytes(32), {
    path: '/procore/oauth/callback',
    secure: true,
    maxAgeSeconds: 600,
  });
  const pair = (setCookie: string) => setCookie.split('; ')[0];

  it('issues a cookie that names the flow and carries neither the state nor the key', () => {
    const cookie = binding.issue(STATE);
    expect(cookie).toMatch(
      /^procore_oauth_[0-9a-f]{16}=[A-Za-z0-9_-]{43}; Max-Age=600; Path=\/procore\/oauth\/callback; HttpOnly; SameSite=Lax; Secure$/,
    );
    expect(cookie).not.toContain(STATE);
    expect(binding.cookieName(STATE)).not.toBe(binding.cookieName(`${STATE}x`));
  });

  it('verifies its own cookie, among others', () => {
    expect(binding.verify(STATE, `other=1; ${pair(binding.issue(STATE))}; more=2`)).toBe(true);
  });

  it('refuses a missing, tampered, truncated or foreign cookie', () => {
    const [name, value] = pair(binding.issue(STATE)).split('=');
    const flipped = `${value.slice(0, -1)}${value.endsWith('A') ? 'B' : 'A'}`;
    const foreign = new OAuthBrowserBinding(randomBytes(32), {
      path: '/',
      secure: false,
      maxAgeSeconds: 1,
    });
    for (const header of [
      undefined,
      '',
      `${name}=`,
      `${name}=${flipped}`,
      `${name}=${value.slice(0, 20)}`,
      `${name}=${value}${value}`,
      pair(foreign.issue(STATE)),
      pair(binding.issue(`${STATE}x`)),
    ])
      expect(binding.verify(STATE, header)).toBe(false);
  });

  it('clears the flow cookie with the same name, path and flags', () => {
    expect(binding.clear(STATE)).toBe(
      `${binding.cookieName(STATE)}=; Max-Age=0; Path=/procore/oauth/callback; HttpOnly; SameSite=Lax; Secure`,
    );
  });
});
