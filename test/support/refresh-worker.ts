// A separate app instance for the SIGKILL test: boots the module against the given database and
// fake Procore, then runs scheduler ticks until nothing is due. The test kills it mid-way.
import 'reflect-metadata';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import {
  ProcoreAuthModule,
  TokenRefreshScheduler,
  procoreAuthEntities,
  type ProcoreAuthModuleOptions,
} from '../../lib/index.js';

const { databaseUrl, options } = JSON.parse(process.env.PROCORE_WORKER_CONFIG as string) as {
  databaseUrl: string;
  options: ProcoreAuthModuleOptions;
};

@Module({
  imports: [
    TypeOrmModule.forRoot({ type: 'postgres', url: databaseUrl, entities: procoreAuthEntities }),
    ProcoreAuthModule.forRoot(options),
  ],
})
class WorkerModule {}

const app = await NestFactory.createApplicationContext(WorkerModule, { logger: false });
process.stdout.write('ready\n');
const scheduler = app.get(TokenRefreshScheduler);
for (;;) {
  const summary = await scheduler.runTick();
  if (summary.claimed === 0) break;
}
process.stdout.write('done\n');
await app.close();
