import {
  closeSync,
  fchmodSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { JWT_SECRET_BYTES } from './fake-procore-crypto.js';
import type { FakeProcoreUser } from './fake-procore.types.js';

// The fake's optional state file (`FakeProcoreServerOptions.stateFile`): what it holds, how it
// is checked when loaded, and how it is written without a reader ever seeing half of it.

const STATE_FILE_VERSION = 1;
const STATE_FILE_MODE = 0o600;

/** The content of {@link FakeProcoreServerOptions.stateFile}. Bump `version` on any change. */
export interface PersistedState {
  readonly version: typeof STATE_FILE_VERSION;
  /** The HS256 secret, base64url. */
  readonly jwtSecret: string;
  readonly clockOffsetMs: number;
  readonly grants: readonly PersistedGrant[];
}

export interface PersistedGrant {
  readonly id: string;
  readonly user: FakeProcoreUser | null;
  readonly refreshToken: string | null;
  readonly revoked: boolean;
}

/** The state to save: the current {@link STATE_FILE_VERSION} with `content`. */
export function persistedState(content: Omit<PersistedState, 'version'>): PersistedState {
  return { version: STATE_FILE_VERSION, ...content };
}

/** The saved state, or undefined when `file` does not exist; throws, naming `file`, otherwise. */
export function loadState(file: string): PersistedState | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`FakeProcoreServer: cannot read the state file ${file}`, { cause: error });
  }
  let value: unknown;
  try {
    value = JSON.parse(text) as unknown;
  } catch (error) {
    throw new Error(
      `FakeProcoreServer: the state file ${file} is not valid JSON; fix or delete it`,
      { cause: error },
    );
  }
  const problem = persistedStateProblem(value);
  if (problem !== undefined) {
    throw new Error(
      `FakeProcoreServer: the state file ${file} is not a fake Procore state file (${problem}); fix or delete it`,
    );
  }
  return value as PersistedState;
}

/** What is wrong with `value` as a {@link PersistedState}, or undefined when nothing is. */
function persistedStateProblem(value: unknown): string | undefined {
  if (!isRecord(value)) return 'not a JSON object';
  if (value['version'] !== STATE_FILE_VERSION)
    return `unsupported version ${JSON.stringify(value['version'])}`;
  const secret = value['jwtSecret'];
  const secretBytes = typeof secret === 'string' ? Buffer.from(secret, 'base64url') : undefined;
  // Node's base64url decoder skips what it does not understand, hence the round trip.
  if (secretBytes?.length !== JWT_SECRET_BYTES || secretBytes.toString('base64url') !== secret) {
    return 'bad jwtSecret';
  }
  if (typeof value['clockOffsetMs'] !== 'number' || !Number.isFinite(value['clockOffsetMs'])) {
    return 'bad clockOffsetMs';
  }
  const grants = value['grants'];
  if (!Array.isArray(grants)) return 'grants is not an array';
  const ids = new Set<string>();
  const refreshTokens = new Set<string>();
  for (const [index, grant] of grants.entries()) {
    if (!isPersistedGrant(grant)) return `bad grant at index ${index}`;
    if (ids.has(grant.id)) return `duplicate grant id at index ${index}`;
    ids.add(grant.id);
    if (grant.refreshToken !== null) {
      if (grant.revoked) return `revoked grant with a refresh token at index ${index}`;
      if (refreshTokens.has(grant.refreshToken)) return `duplicate refresh token at index ${index}`;
      refreshTokens.add(grant.refreshToken);
    }
  }
  return undefined;
}

function isPersistedGrant(value: unknown): value is PersistedGrant {
  return (
    isRecord(value) &&
    typeof value['id'] === 'string' &&
    value['id'] !== '' &&
    (value['user'] === null || isUser(value['user'])) &&
    (value['refreshToken'] === null ||
      (typeof value['refreshToken'] === 'string' && value['refreshToken'] !== '')) &&
    typeof value['revoked'] === 'boolean'
  );
}

function isUser(value: unknown): value is FakeProcoreUser {
  return (
    isRecord(value) &&
    Number.isSafeInteger(value['id']) &&
    typeof value['login'] === 'string' &&
    typeof value['name'] === 'string'
  );
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function createParentDirectory(file: string): void {
  try {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new Error(`FakeProcoreServer: cannot create the directory of the state file ${file}`, {
      cause: error,
    });
  }
}

/** Writes `<file>.tmp` with mode 0600, then renames it over `file`, so a reader never sees half a file. */
export function writeFileAtomically(file: string, data: string): void {
  const temporary = `${file}.tmp`;
  try {
    const fd = openSync(temporary, 'w', STATE_FILE_MODE);
    try {
      // The mode of openSync applies only to a new file (and is subject to the umask).
      fchmodSync(fd, STATE_FILE_MODE);
      writeFileSync(fd, data);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, file);
  } catch (error) {
    throw new Error(`FakeProcoreServer: cannot write the state file ${file}`, { cause: error });
  }
}
