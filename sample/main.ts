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
  const as = `-H 'x-user-id: alice'`;
  // curl's cookie jar stands in for the browser: the callback needs the cookie /authorize set.
  const jar = '-c procore-sample.cookies -b procore-sample.cookies';
  const banner = [
    '',
    `nestjs-procore-auth sample listening on ${base}`,
    ...defaults.notes.map((note) => `  ${note}`),
    '',
    "Try it (the x-user-id header is the sample's stand-in for your login):",
    "  # 1. start the connection: our route answers 302 to Procore's authorize URL",
    `  curl -s -o /dev/null -w '%{redirect_url}\\n' ${jar} ${as} ${base}/procore/oauth/authorize`,
    defaults.fakeProcore
      ? "  # 2. Procore (here the fake, which auto-approves) redirects to our callback\n  curl -s -o /dev/null -w '%{redirect_url}\\n' '<the URL printed by 1>'"
      : '  # 2. open the URL printed by 1 in a browser and approve; Procore redirects to the callback',
    '  # 3. the callback (in the same "browser": the cookie jar) stores the connection',
    `  curl -s ${jar} ${as} '<the URL printed by 2>'`,
    "  # then: Procore's /me, companies and a company's projects (all pages) as alice, the connection (no secrets), revoke",
    `  curl -s ${as} ${base}/me`,
    `  curl -s ${as} ${base}/companies`,
    `  curl -s ${as} ${base}/companies/1001/projects`,
    `  curl -s ${as} ${base}/status`,
    `  curl -s -X DELETE ${as} ${base}/connection`,
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
