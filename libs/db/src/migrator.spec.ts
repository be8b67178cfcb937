import { mkdtemp, mkdir, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import * as mariadb from 'mariadb';
import { dropDatabase, migrate, readMigrations } from './migrator';
import { parseDatabaseUrl, withDatabase } from './database-url';
import { MIGRATIONS_DIR, testServerUrl } from './testing/test-database';

describe('migrate', () => {
  const url = withDatabase(testServerUrl(), `sendense_m_${randomBytes(4).toString('hex')}`);
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'migr-'));
  });
  afterAll(async () => {
    await dropDatabase(url);
    await rm(dir, { recursive: true, force: true });
  });

  async function query<T>(sql: string): Promise<T> {
    const p = parseDatabaseUrl(url);
    const conn = await mariadb.createConnection({ host: p.host, port: p.port, user: p.user, password: p.password, database: p.database });
    try {
      return (await conn.query(sql)) as T;
    } finally {
      await conn.end();
    }
  }

  it('applies the project migrations once, recording them as Prisma does', async () => {
    const first = await migrate(url, MIGRATIONS_DIR);
    const files = await readMigrations(MIGRATIONS_DIR);
    expect(first.applied).toEqual(files.map((f) => f.name));
    const second = await migrate(url, MIGRATIONS_DIR);
    expect(second).toEqual({ applied: [], alreadyApplied: files.map((f) => f.name) });
    const rows = await query<{ migration_name: string; checksum: string; applied_steps_count: number; finished_at: Date }[]>(
      'SELECT migration_name, checksum, applied_steps_count, finished_at FROM _prisma_migrations ORDER BY migration_name',
    );
    expect(rows.map((r) => [r.migration_name, r.checksum, Number(r.applied_steps_count)])).toEqual(files.map((f) => [f.name, f.checksum, 1]));
    expect(rows.every((r) => r.finished_at instanceof Date)).toBe(true);
  }, 60_000);

  it('records a failed migration and refuses to go on until it is resolved', async () => {
    const own = withDatabase(testServerUrl(), `sendense_m_${randomBytes(4).toString('hex')}`);
    await mkdir(join(dir, '001_ok'));
    await writeFile(join(dir, '001_ok', 'migration.sql'), 'CREATE TABLE a (id INT PRIMARY KEY);');
    await mkdir(join(dir, '002_bad'));
    await writeFile(join(dir, '002_bad', 'migration.sql'), 'CREATE TABLE b (id INT PRIMARY KEY); THIS IS NOT SQL;');
    try {
      await expect(migrate(own, dir)).rejects.toThrow(/migration 002_bad failed/);
      await expect(migrate(own, dir)).rejects.toThrow(/002_bad started earlier and did not finish/);
    } finally {
      await dropDatabase(own);
    }
  }, 60_000);

  it('refuses a URL that is not MySQL', () => {
    expect(() => parseDatabaseUrl('postgres://x@y/z')).toThrow(/mysql:\/\//);
    expect(() => parseDatabaseUrl('nope')).toThrow(/not a URL/);
    expect(() => parseDatabaseUrl('mysql://root@h/bad-name')).toThrow(/letters, digits/);
    expect(parseDatabaseUrl('mysql://u:p%40ss@db:3307/x')).toEqual({ host: 'db', port: 3307, user: 'u', password: 'p@ss', database: 'x' });
  });
});
