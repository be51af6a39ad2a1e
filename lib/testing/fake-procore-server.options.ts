import type { FakeProcoreCompany, FakeProcoreRateLimit } from './fake-procore-api.js';
import type { FakeProcoreUser } from './fake-procore.types.js';

/** Options of {@link FakeProcoreServer.start}. Every option has a default. */
export interface FakeProcoreServerOptions {
  /** The one registered OAuth client. Default `'fake-procore-client-id'`. */
  clientId?: string;
  /** Its secret. Default `'fake-procore-client-secret'`. */
  clientSecret?: string;
  /** `expires_in` of every access token, in seconds. Default `5400` (Procore's value today). */
  accessTokenTtlSeconds?: number;
  /**
   * The user that `GET /oauth/authorize` auto-approves.
   * Default `{ id: 4242, login: 'ada@example.com', name: 'Ada Lovelace' }`.
   */
  user?: FakeProcoreUser;
  /**
   * The user behind client-credentials (service account) tokens, answered by `GET /rest/v1.0/me`.
   * Default `{ id: 9000, login: 'service-account@fake-procore.test', name: 'Fake Service Account' }`.
   */
  serviceAccountUser?: FakeProcoreUser;
  /** Latency added to every `POST /oauth/token` response, in ms. Default `0`. */
  tokenLatencyMs?: number;
  /** Interface to listen on. Default `'127.0.0.1'`. */
  host?: string;
  /** Port to listen on. Default `0` (a free port chosen by the OS). */
  port?: number;
  /**
   * A JSON file that keeps the fake's state across restarts, for a sample app whose database
   * (and the tokens in it) outlives the process. Default: none, nothing is ever written.
   *
   * When set, {@link FakeProcoreServer.start} loads the state from the file if it exists and
   * rejects, naming the file, if it cannot be read or is not a state file this fake wrote; it
   * never silently starts over. The state is the HS256 signing secret, every grant with its live
   * refresh token and revoked flag, and the clock offset (so the fake clock, and with it token
   * expiry, runs on while the server is down). Pending authorization codes, faults, latency,
   * counters and the options themselves are not kept. A relative path is resolved against the
   * working directory at start; a missing parent directory is created.
   *
   * The file is written at start and after every change of that state (grant created, refresh
   * token rotated, grant revoked, clock moved), synchronously and atomically (`<file>.tmp`, then
   * rename), with mode `0600`. Each write rewrites the whole file, so seeding thousands of
   * grants with {@link FakeProcoreServer.issueTokens} is slow with a state file: leave it
   * unset for benchmarks. Only one server may use a given file at a time.
   *
   * The file holds secrets of this FAKE server only (its signing secret and refresh tokens that
   * nothing but this fake accepts), never anything of the real Procore. Keep it out of version
   * control all the same.
   */
  stateFile?: string;
  /**
   * The companies of the REST API. Default `[{ id: '1001', name: 'Acme Builders' },
   * { id: '9007199254740993', name: 'Big Id Construction' }]`; see {@link FakeProcoreServer.companies}.
   */
  companies?: FakeProcoreCompany[];
  /** Projects each company starts with. Default `250`; see {@link FakeProcoreServer.setProjectCount}. */
  projectsPerCompany?: number;
  /** The API's rate limit. Default 3600 calls per 3600 s; see {@link FakeProcoreServer.setRateLimit}. */
  rateLimit?: FakeProcoreRateLimit;
}

export const DEFAULT_CLIENT_ID = 'fake-procore-client-id';
export const DEFAULT_CLIENT_SECRET = 'fake-procore-client-secret';
export const DEFAULT_ACCESS_TOKEN_TTL_SECONDS = 5400;
export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_USER: Readonly<FakeProcoreUser> = {
  id: 4242,
  login: 'ada@example.com',
  name: 'Ada Lovelace',
};
export const DEFAULT_SERVICE_ACCOUNT_USER: Readonly<FakeProcoreUser> = {
  id: 9000,
  login: 'service-account@fake-procore.test',
  name: 'Fake Service Account',
};

/** Throws a `RangeError` naming the first option that has no meaning. */
export function validateOptions(options: FakeProcoreServerOptions): void {
  if (options.clientId !== undefined && options.clientId === '') {
    throw new RangeError('FakeProcoreServer: clientId must not be empty');
  }
  if (options.clientSecret !== undefined && options.clientSecret === '') {
    throw new RangeError('FakeProcoreServer: clientSecret must not be empty');
  }
  const ttl = options.accessTokenTtlSeconds;
  if (ttl !== undefined && !(Number.isInteger(ttl) && ttl > 0)) {
    throw new RangeError(
      `FakeProcoreServer: accessTokenTtlSeconds must be a positive integer, got ${ttl}`,
    );
  }
  if (options.stateFile !== undefined && options.stateFile === '') {
    throw new RangeError('FakeProcoreServer: stateFile must not be empty');
  }
  const latency = options.tokenLatencyMs;
  if (latency !== undefined && !(Number.isFinite(latency) && latency >= 0)) {
    throw new RangeError(`FakeProcoreServer: tokenLatencyMs must be a number >= 0, got ${latency}`);
  }
}
