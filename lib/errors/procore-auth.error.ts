/**
 * Base class of every error this library throws. `code` is stable and machine-readable;
 * messages never contain a token, an authorization code, a client secret or a key.
 * @publicApi
 */
export abstract class ProcoreAuthError extends Error {
  abstract readonly code: string;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}
