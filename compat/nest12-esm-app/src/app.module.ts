import { Module } from '@nestjs/common';
import { ConfigModule, type ConfigType } from '@nestjs/config';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ProcoreAuthModule, procoreAuthMigrations, procoreConfig } from 'nestjs-procore-auth';
import { MeController } from './me.controller.js';

/** Wired as the README's "Configure" section says, on NestJS 12 (ESM) and TypeORM 1.x. */
@Module({
  imports: [
    ConfigModule.forRoot({ isGlobal: true, ignoreEnvFile: true }),
    TypeOrmModule.forRootAsync({
      useFactory: () => ({
        type: 'postgres',
        url: process.env.DATABASE_URL,
        autoLoadEntities: true,
        migrations: [...procoreAuthMigrations],
        migrationsRun: true,
      }),
    }),
    ProcoreAuthModule.forRootAsync({
      isGlobal: true,
      imports: [ConfigModule.forFeature(procoreConfig)],
      inject: [procoreConfig.KEY],
      useFactory: (cfg: ConfigType<typeof procoreConfig>) => ({
        ...cfg,
        // This app has no authentication: the caller names itself (never do this in production).
        ownerResolver: (request: unknown) =>
          (request as { headers: Record<string, string | undefined> }).headers['x-user-id'],
      }),
    }),
  ],
  controllers: [MeController],
})
export class AppModule {}
