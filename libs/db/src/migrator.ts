import { createHash, randomUUID } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as mariadb from 'mariadb';
import { parseDatabaseUrl } from './database-url';

/**
 * Applies prisma/migrations/<name>/migration.sql in order and records each in
 * Prisma's own `_prisma_migrations` table, exactly as `prisma migrate deploy`
 * does (same table, same sha256 checksum of the file), so a host that has
 * Prisma's native schema engine can switch to `prisma migrate deploy` with
 * nothing to repair. We do this ourselves because the engine is a download
 * that offline machines cannot make.
 */

// Prisma's DDL for its bookkeeping table (MySQL flavour).
const PRISMA_MIGRATIONS_DDL = `CREATE TABLE IF NOT EXISTS _prisma_migrations (
    id                      VARCHAR(36) PRIMARY KEY NOT NULL,
    checksum                VARCHAR(64) NOT NULL,
    finished_at             DATETIME(3),
    migration_name          VARCHAR(255) NOT NULL,
    logs                    TEXT,
    rolled_back_at          DATETIME(3),
    started_at              DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    applied_steps_count     INTEGER UNSIGNED NOT NULL DEFAULT 0
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`;

export interface MigrationFile {
  name: string;
  sql: string;
  checksum: string;
}

export interface MigrateResult {
  applied: string[];
  alreadyApplied: string[];
}

export async function readMigrations(migrationsDir: string): Promise<MigrationFile[]> {
  const entries = await readdir(migrationsDir, { withFileTypes: true });
  const names = entries
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
  const out: MigrationFile[] = [];
  for (const name of names) {
    const sql = await readFile(join(migrationsDir, name, 'migration.sql'), 'utf8');
    out.push({ name, sql, checksum: createHash('sha256').update(sql).digest('hex') });
  }
  return out;
}

export class MigrationError extends Error {
  override name = 'MigrationError';
}

/** Create the database named in the URL if it does not exist yet. */
export async function ensureDatabase(databaseUrl: string): Promise<void> {
  const p = parseDatabaseUrl(databaseUrl);
  const conn = await mariadb.createConnection({ host: p.host, port: p.port, user: p.user, password: p.password });
  try {
    await conn.query(`CREATE DATABASE IF NOT EXISTS \`${p.database}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
  } finally {
    await conn.end();
  }
}

export async function dropDatabase(databaseUrl: string): Promise<void> {
  const p = parseDatabaseUrl(databaseUrl);
  const conn = await mariadb.createConnection({ host: p.host, port: p.port, user: p.user, password: p.password });
  try {
    await conn.query(`DROP DATABASE IF EXISTS \`${p.database}\``);
  } finally {
    await conn.end();
  }
}

export async function migrate(databaseUrl: string, migrationsDir: string, log: (line: string) => void = () => undefined): Promise<MigrateResult> {
  const migrations = await readMigrations(migrationsDir);
  await ensureDatabase(databaseUrl);
  const p = parseDatabaseUrl(databaseUrl);
  const conn = await mariadb.createConnection({
    host: p.host,
    port: p.port,
    user: p.user,
    password: p.password,
    database: p.database,
    multipleStatements: true,
  });
  const result: MigrateResult = { applied: [], alreadyApplied: [] };
  try {
    // Two `db:migrate` runs at once (two nodes starting) must not both apply.
    const [lock] = await conn.query<{ l: number }[]>(`SELECT GET_LOCK('sendense_migrate', 120) AS l`);
    if (Number(lock?.l) !== 1) throw new MigrationError('could not take the migration lock within 120 s: is another db:migrate running?');
    await conn.query(PRISMA_MIGRATIONS_DDL);
    const rows = await conn.query<{ migration_name: string; checksum: string; finished_at: Date | null; rolled_back_at: Date | null }[]>(
      'SELECT migration_name, checksum, finished_at, rolled_back_at FROM _prisma_migrations',
    );
    const known = new Map(rows.filter((r) => !r.rolled_back_at).map((r) => [r.migration_name, r]));
    const onDisk = new Set(migrations.map((m) => m.name));
    for (const r of known.values()) {
      if (!onDisk.has(r.migration_name)) {
        log(`warning: the database has migration ${r.migration_name}, which is not in ${migrationsDir} (a newer release applied it?)`);
      }
    }
    for (const m of migrations) {
      const row = known.get(m.name);
      if (row && !row.finished_at) {
        throw new MigrationError(
          `migration ${m.name} started earlier and did not finish; fix the database by hand, then mark it rolled back ` +
            `(UPDATE _prisma_migrations SET rolled_back_at=NOW(3) WHERE migration_name='${m.name}') and run db:migrate again`,
        );
      }
      if (row) {
        if (row.checksum !== m.checksum) {
          log(`warning: migration ${m.name} was modified after it was applied (checksum differs)`);
        }
        result.alreadyApplied.push(m.name);
        continue;
      }
      const id = randomUUID();
      await conn.query('INSERT INTO _prisma_migrations (id, checksum, migration_name, started_at, applied_steps_count) VALUES (?, ?, ?, NOW(3), 0)', [
        id,
        m.checksum,
        m.name,
      ]);
      try {
        await conn.query(m.sql);
      } catch (err) {
        const msg = (err as Error).message;
        await conn.query('UPDATE _prisma_migrations SET logs = ? WHERE id = ?', [msg, id]);
        throw new MigrationError(`migration ${m.name} failed: ${msg}`);
      }
      await conn.query('UPDATE _prisma_migrations SET finished_at = NOW(3), applied_steps_count = 1 WHERE id = ?', [id]);
      result.applied.push(m.name);
      log(`applied ${m.name}`);
    }
    await conn.query(`SELECT RELEASE_LOCK('sendense_migrate')`);
  } finally {
    await conn.end();
  }
  return result;
}
