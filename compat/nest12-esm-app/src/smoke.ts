// Boots the app in a plain Node process (ESM, `import 'nestjs-procore-auth'`) on Fastify, connects
// a user through the fake Procore server and calls the @ProcoreToken() route over HTTP.
import 'reflect-metadata';
import { strict as assert } from 'node:assert';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { ProcoreTokenService } from 'nestjs-procore-auth';
import { FakeProcoreServer, connectWithFakeProcore } from 'nestjs-procore-auth/testing';
import { AppModule } from './app.module.js';
import { prepareEnvironment } from './procore-env.js';

const fake = await FakeProcoreServer.start();
const database = await prepareEnvironment(fake, 'compat_nest12');
const app = await NestFactory.create<NestFastifyApplication>(AppModule, new FastifyAdapter(), {
  logger: ['error', 'warn'],
});
try {
  await app.listen(0, '127.0.0.1');
  const base = await app.getUrl();
  await connectWithFakeProcore(app.get(ProcoreTokenService), 'user-1');

  const me = await fetch(`${base}/me`, { headers: { 'x-user-id': 'user-1' } });
  assert.equal(me.status, 200);
  assert.equal(typeof ((await me.json()) as { login?: unknown }).login, 'string');

  const stranger = await fetch(`${base}/me`, { headers: { 'x-user-id': 'user-2' } });
  assert.equal(stranger.status, 401);
  assert.equal(((await stranger.json()) as { reason?: unknown }).reason, 'not_connected');

  assert.match(import.meta.resolve('nestjs-procore-auth'), /\/dist\/index\.js$/);
  console.log(
    'nest12-esm-app: NestJS 12 (ESM, Fastify) booted with forRootAsync; GET /me answered 200 with a token, 401 not_connected without one',
  );
} finally {
  await app.close();
  await fake.close();
  await database.drop();
}
