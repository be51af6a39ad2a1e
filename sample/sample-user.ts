/**
 * THE SAMPLE'S STAND-IN FOR AUTHENTICATION — not for production.
 *
 * A real app has its own login (sessions, JWT, Passport) that sets `req.user`; the module's
 * default owner resolver then reads `req.user.id` and you need none of this. To keep the sample
 * free of an auth stack, the user id is taken from an `x-user-id` header (curl) or a `sample_user`
 * cookie set by `GET /login/:user` (browser). Anyone can claim any id this way.
 */
export function sampleUser(request: unknown): string | undefined {
  const headers =
    (request as { headers?: Record<string, string | string[] | undefined> }).headers ?? {};
  const header = headers['x-user-id'];
  if (typeof header === 'string' && header) return header;
  const cookie = typeof headers.cookie === 'string' ? headers.cookie : '';
  const match = /(?:^|;\s*)sample_user=([^;]+)/.exec(cookie);
  return match ? decodeURIComponent(match[1]) : undefined;
}
