import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module.js';
import { applyEmbeddedDefaults } from './embedded-defaults.js';

async function bootstrap(): Promise<void> {
  const port = Number(process.env.PORT ?? 3000);
  const defaults = await applyEmbeddedDefaults(port);
  const app = await NestFactory.create(AppModule);
  await app.listen(port, '127.0.0.1');

  const base = `http://localhost:${port}`;
  const banner = [
    '',
    `nestjs-procore-auth sample listening on ${base}`,
    ...defaults.notes.map((note) => `  ${note}`),
    '',
    "Try it (the x-user-id header is the sample's stand-in for your login):",
    `  curl -si -H 'x-user-id: alice' ${base}/procore/oauth/authorize | grep -i ^location   # 1. start: Procore's authorize URL`,
    defaults.fakeProcore
      ? `  curl -si '<that location>' | grep -i ^location                                     # 2. the fake approves: our callback URL`
      : '  open that URL in a browser and approve                                             # 2. Procore redirects to the callback',
    `  curl -s -H 'x-user-id: alice' '<that callback URL>'                                 # 3. connected`,
    `  curl -s -H 'x-user-id: alice' ${base}/me                                           # Procore's /rest/v1.0/me with alice's token`,
    `  curl -s -H 'x-user-id: alice' ${base}/status                                       # the connection, no secrets`,
    `  curl -s -X DELETE -H 'x-user-id: alice' ${base}/connection                         # revoke`,
    `Or in a browser: ${base}/login/alice`,
    '',
  ];
  console.log(banner.join('\n'));

  let stopping = false;
  const shutdown = async () => {
    if (stopping) return;
    stopping = true;
    await app.close();
    await defaults.stop();
    process.exit(0);
  };
  process.once('SIGINT', () => void shutdown());
  process.once('SIGTERM', () => void shutdown());
}

void bootstrap();
