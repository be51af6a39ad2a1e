import { describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import config from '../../jest.config.js';

// `npx jest --selectProjects unit` must run on a machine without PostgreSQL (README, "Developing"):
// the unit project has no global setup (which finds or starts a database), and no spec beside
// the code reaches for a database.

// npm runs the tests from the package root.
const root = process.cwd();

type Project = Exclude<NonNullable<typeof config.projects>[number], string>;

function project(name: string): Project {
  const found = config.projects?.find(
    (entry): entry is Project => typeof entry !== 'string' && entry.displayName === name,
  );
  if (!found) throw new Error(`jest.config.ts has no project "${name}"`);
  return found;
}

function specsUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.spec.ts'))
    .map((file) => join(dir, file));
}

describe('jest projects', () => {
  it('the unit project runs the specs in lib/ with no database set-up', () => {
    const unit = project('unit');

    expect(unit.roots).toEqual(['<rootDir>/lib']);
    expect(unit.globalSetup).toBeUndefined();
    expect(unit.globalTeardown).toBeUndefined();
  });

  it('the e2e project runs test/ with the PostgreSQL global setup', () => {
    const e2e = project('e2e');

    expect(e2e.roots).toEqual(['<rootDir>/test']);
    expect(e2e.globalSetup).toBe('<rootDir>/test/support/global-setup.ts');
    expect(e2e.globalTeardown).toBe('<rootDir>/test/support/global-teardown.ts');
  });

  it('no spec in lib/ imports a database driver, TypeORM or the test database helpers', () => {
    const databaseImport = /from '(pg|typeorm|@nestjs\/typeorm|[./]+\/test\/support\/[^']*)'/;
    const offenders = specsUnder(join(root, 'lib')).filter((file) =>
      databaseImport.test(readFileSync(file, 'utf8')),
    );

    expect(offenders.map((file) => relative(root, file))).toEqual([]);
  });
});
