// A separate app instance for the SIGTERM test: an HTTP app (Express) with shutdown hooks whose one
// route gets the request owner's token through `@ProcoreToken()`, the request path a user's
// handlers take. Prints `listening <port>` once it accepts requests, `sigterm` when the signal
// arrives, and every Nest log line as `<level> <message>`; the test reads them from stdout.
import 'reflect-metadata';
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { Controller, Get, Module, type LoggerService } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import {
  ProcoreAuthModule,
  ProcoreToken,
  procoreAuthEntities,
  type ProcoreAuthModuleOptions,
} from '../../lib/index.js';

const { databaseUrl, options } = JSON.parse(process.env.PROCORE_WORKER_CONFIG as string) as {
  databaseUrl: string;
  options: ProcoreAuthModuleOptions;
};

@Controller()
class TokenController {
  /** A fingerprint of the token, never the token: the test compares it with a fresh instance's. */
  @Get('token')
  token(@ProcoreToken() token: string) {
    return { sha256: createHash('sha256').update(token).digest('hex') };
  }
}

@Module({
  imports: [
    TypeOrmModule.forRoot({ type: 'postgres', url: databaseUrl, entities: procoreAuthEntities }),
    ProcoreAuthModule.forRoot({
      ...options,
      // The sample's stand-in for authentication: the user id comes from a header.
      ownerResolver: (request) =>
        (request as { headers: Record<string, string | undefined> }).headers['x-user-id'],
    }),
  ],
  controllers: [TokenController],
})
class WorkerModule {}

const print = (level: string) => (message: unknown) => {
  process.stdout.write(`${level} ${String(message).replace(/\n/g, ' ')}\n`);
};
const logger: LoggerService = {
  log: print('log'),
  warn: print('warn'),
  error: print('error'),
  fatal: print('fatal'),
};

const app = await NestFactory.create(WorkerModule, { logger });
// On SIGTERM Nest runs the shutdown hooks (the module waits for refreshes in flight there), closes
// the HTTP server and the DataSource, then re-raises the signal.
app.enableShutdownHooks(['SIGTERM']);
process.once('SIGTERM', () => process.stdout.write('sigterm\n'));
await app.listen(0, '127.0.0.1');
const { port } = app.getHttpServer().address() as AddressInfo;
process.stdout.write(`listening ${port}\n`);
