import type { ModuleRef } from '@nestjs/core';
import { getDataSourceToken } from '@nestjs/typeorm';
import type { DataSource, EntityTarget, ObjectLiteral } from 'typeorm';
import { ProcoreConfigurationError } from '../errors/procore-configuration.error.js';

/**
 * Resolves the DataSource named in the options lazily, on first use: providers of
 * `TypeOrmModule` may be created after ours, and a DataSource instance needs no lookup at all.
 */
export function dataSourceResolver(
  dataSource: DataSource | string | undefined,
  moduleRef: ModuleRef,
): () => DataSource {
  let resolved: DataSource | undefined = typeof dataSource === 'object' ? dataSource : undefined;
  return () => {
    if (resolved) return resolved;
    const token = getDataSourceToken(dataSource);
    try {
      resolved = moduleRef.get<DataSource>(token, { strict: false });
    } catch (error) {
      const name = typeof dataSource === 'string' ? `named "${dataSource}"` : '(the default one)';
      throw new ProcoreConfigurationError(
        `ProcoreAuthModule found no TypeORM DataSource ${name}: register TypeOrmModule.forRoot(${
          typeof dataSource === 'string' ? `{ name: '${dataSource}', ... }` : '...'
        }) or pass a DataSource instance as the dataSource option.`,
        { cause: error },
      );
    }
    return resolved;
  };
}

/**
 * Fails at bootstrap, with the fix, when the entity is not registered on the DataSource or the
 * migration has not been run.
 */
export async function assertStorageReady(
  dataSource: DataSource,
  entity: EntityTarget<ObjectLiteral>,
): Promise<void> {
  if (!dataSource.hasMetadata(entity)) {
    throw new ProcoreConfigurationError(
      `The TypeORM DataSource does not know ${String((entity as { name?: string }).name)}: add procoreAuthEntities to its entities` +
        ` (autoLoadEntities registers them only on the default DataSource, and on a named one passed to ProcoreAuthModule.forRoot()).`,
    );
  }
  const tablePath = dataSource.getMetadata(entity).tablePath;
  const [row] = (await dataSource.query('SELECT to_regclass($1) AS found', [tablePath])) as {
    found: string | null;
  }[];
  if (!row?.found) {
    throw new ProcoreConfigurationError(
      `Table ${tablePath} does not exist: add procoreAuthMigrations to your DataSource's migrations and run them (e.g. migrationsRun: true).`,
    );
  }
}
