import { randomBytes } from 'node:crypto';
import type { FakeProcoreServer } from 'nestjs-procore-auth/testing';
import type { WorkerConfig } from './protocol.js';

/** One key for every instance of a run, as the instances of a deployment share theirs. */
export function generateEncryptionKey(): string {
  return `bench:${randomBytes(32).toString('base64')}`;
}

/** A worker config pointing an instance at the benchmark's database and fake Procore. */
export function workerConfig(
  params: {
    label: string;
    databaseUrl: string;
    fake: FakeProcoreServer;
    encryptionKey: string;
  } & Partial<Pick<WorkerConfig, 'poolSize' | 'http' | 'options'>>,
): WorkerConfig {
  return {
    label: params.label,
    databaseUrl: params.databaseUrl,
    procore: {
      url: params.fake.url,
      clientId: params.fake.clientId,
      clientSecret: params.fake.clientSecret,
    },
    encryptionKey: params.encryptionKey,
    poolSize: params.poolSize ?? 10,
    http: params.http ?? false,
    options: { scheduler: { enabled: false }, ...params.options },
  };
}
