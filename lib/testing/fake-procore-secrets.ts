import type { ServerResponse } from 'node:http';

/** What a secret reported to {@link FakeProcoreServer.onSecret} listeners is. */
export type FakeProcoreSecretKind =
  | 'client-secret'
  | 'signing-key'
  | 'authorization-code'
  | 'access-token'
  | 'refresh-token'
  | 'encryption-key';

/** Receives each secret as it comes into existence; see {@link FakeProcoreServer.onSecret}. */
export type FakeProcoreSecretListener = (secret: string, kind: FakeProcoreSecretKind) => void;

// Module-level on purpose: a leak check wants the secrets of every fake a test file starts,
// without the file having to hand each server to it.
const listeners = new Set<FakeProcoreSecretListener>();
// The responses fake servers wrote: they carry tokens by design, unlike the app under test's.
const fakeResponses = new WeakSet<ServerResponse>();

/** Adds `listener`; returns the function that removes it. */
export function onFakeProcoreSecret(listener: FakeProcoreSecretListener): () => void {
  listeners.add(listener);
  return () => {
    listeners.delete(listener);
  };
}

/** Tells every listener about `secret`. Internal to `nestjs-procore-auth/testing`. */
export function reportFakeProcoreSecret(secret: string, kind: FakeProcoreSecretKind): void {
  for (const listener of listeners) listener(secret, kind);
}

/** Records that a fake server is writing `response`. Internal to `nestjs-procore-auth/testing`. */
export function markFakeProcoreResponse(response: ServerResponse): void {
  fakeResponses.add(response);
}

/** Whether a fake server wrote `response`. */
export function isFakeProcoreResponse(response: ServerResponse): boolean {
  return fakeResponses.has(response);
}
