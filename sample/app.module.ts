import { Module } from '@nestjs/common';
import { ConfigModule, ConfigService, type ConfigType } from '@nestjs/config';
import { TypeOrmModule } from '@nestjs/typeorm';
import {
  ProcoreAuthModule,
  procoreAuthEntities,
  procoreAuthMigrations,
  procoreConfig,
} from 'nestjs-procore-auth';
import { ProcoreDemoController } from './procore-demo.controller.js';
import { sampleUser } from './sample-user.js';

@Module({
  imports: [
    ConfigModule.forRoot({ isGlobal: true }),
    TypeOrmModule.forRootAsync({
      inject: [ConfigService],
      useFactory: (config: ConfigService) => ({
        type: 'postgres',
        url: config.getOrThrow<string>('DATABASE_URL'),
        entities: procoreAuthEntities,
        // The package ships its migration; synchronize is never needed.
        migrations: procoreAuthMigrations,
        migrationsRun: true,
        // A wrong DATABASE_URL fails the start within seconds rather than after nine retries.
        retryAttempts: 2,
        retryDelay: 1_000,
      }),
    }),
    ProcoreAuthModule.forRootAsync({
      isGlobal: true,
      imports: [ConfigModule.forFeature(procoreConfig)],
      inject: [procoreConfig.KEY],
      useFactory: (procore: ConfigType<typeof procoreConfig>) => ({
        ...procore,
        ownerResolver: sampleUser,
      }),
    }),
  ],
  controllers: [ProcoreDemoController],
})
export class AppModule {}
