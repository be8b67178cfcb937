import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as mariadb from 'mariadb';
import { get_dmmf } from '@prisma/prisma-schema-wasm';
import { parseDatabaseUrl } from './database-url';
import { createTestDatabase, type TestDatabase } from './testing/test-database';

/**
 * The migrations and schema.prisma must describe the same database: every
 * model and column the generated client knows exists after migrating, with
 * the right type and nullability, and the database has nothing the schema
 * does not know. A column added to schema.prisma without a migration fails here.
 */

interface DmmfField {
  name: string;
  dbName?: string | null;
  kind: 'scalar' | 'object' | 'enum';
  type: string;
  isRequired: boolean;
  isList: boolean;
  nativeType?: [string, string[]] | null;
  relationOnDelete?: string;
  relationFromFields?: string[];
}
interface DmmfModel {
  name: string;
  dbName: string | null;
  fields: DmmfField[];
}
interface Dmmf {
  datamodel: { models: DmmfModel[]; enums: { name: string; values: { name: string }[] }[] };
}

const schemaText = readFileSync(join(__dirname, '../../../prisma/schema.prisma'), 'utf8');
const dmmf = JSON.parse(get_dmmf(JSON.stringify({ prismaSchema: [['schema.prisma', schemaText]] }))) as Dmmf;
const enums = new Map(dmmf.datamodel.enums.map((e) => [e.name, e.values.map((v) => v.name)]));

/** The MariaDB column type Prisma's MySQL connector creates for a field. */
function expectedColumnType(f: DmmfField): string {
  const [native, args] = f.nativeType ?? [undefined, []];
  if (f.kind === 'enum') return `enum(${(enums.get(f.type) ?? []).map((v) => `'${v}'`).join(',')})`;
  switch (f.type) {
    case 'String':
      if (native === 'Text') return 'text';
      if (native === 'VarChar') return `varchar(${args[0]})`;
      return 'varchar(191)';
    case 'Int':
      return 'int(11)';
    case 'BigInt':
      return 'bigint(20)';
    case 'Boolean':
      return 'tinyint(1)';
    case 'Json':
      return 'longtext'; // MariaDB's JSON is LONGTEXT with a json_valid check
    case 'DateTime':
      if (native === 'Timestamp') return args[0] && args[0] !== '0' ? `timestamp(${args[0]})` : 'timestamp';
      return 'datetime(3)';
    default:
      throw new Error(`no mapping for ${f.type}`);
  }
}

describe('migrations agree with schema.prisma', () => {
  let db: TestDatabase;
  let conn: mariadb.Connection;
  let columns: { TABLE_NAME: string; COLUMN_NAME: string; COLUMN_TYPE: string; IS_NULLABLE: string }[];

  beforeAll(async () => {
    db = await createTestDatabase();
    const p = parseDatabaseUrl(db.url);
    conn = await mariadb.createConnection({ host: p.host, port: p.port, user: p.user, password: p.password, database: p.database });
    columns = await conn.query('SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()');
  }, 60_000);

  afterAll(async () => {
    await conn?.end();
    await db?.drop();
  });

  const models = dmmf.datamodel.models;

  it('knows the tables of the planning document', () => {
    const tables = models.map((m) => m.dbName ?? m.name);
    for (const t of [
      'vm_replication_contexts',
      'vm_disks',
      'backup_repositories',
      'backup_jobs',
      'backup_chains',
      'restore_mounts',
      'api_keys',
      'job_events',
    ]) {
      expect(tables).toContain(t);
    }
  });

  it.each(models.map((m) => [m.dbName ?? m.name, m] as const))('table %s has every column with type and nullability', (table, model) => {
    const dbCols = new Map(columns.filter((c) => c.TABLE_NAME === table).map((c) => [c.COLUMN_NAME, c]));
    expect(dbCols.size).toBeGreaterThan(0);
    const expected = model.fields.filter((f) => f.kind !== 'object');
    for (const f of expected) {
      const col = dbCols.get(f.dbName ?? f.name);
      expect({ column: f.dbName ?? f.name, exists: Boolean(col) }).toEqual({ column: f.dbName ?? f.name, exists: true });
      expect({ column: col!.COLUMN_NAME, type: col!.COLUMN_TYPE, nullable: col!.IS_NULLABLE === 'YES' }).toEqual({
        column: f.dbName ?? f.name,
        type: expectedColumnType(f),
        nullable: !f.isRequired,
      });
    }
    // And nothing in the database that the schema does not know.
    expect([...dbCols.keys()].sort()).toEqual(expected.map((f) => f.dbName ?? f.name).sort());
  });

  it('has no table the schema does not know', () => {
    const known = new Set(models.map((m) => m.dbName ?? m.name));
    const extra = [...new Set(columns.map((c) => c.TABLE_NAME))].filter((t) => !known.has(t) && t !== '_prisma_migrations');
    expect(extra).toEqual([]);
  });

  it('has the foreign keys and ON DELETE rules of the schema', async () => {
    const fks: { TABLE_NAME: string; REFERENCED_TABLE_NAME: string; DELETE_RULE: string; COLS: string }[] = await conn.query(
      `SELECT rc.TABLE_NAME, rc.REFERENCED_TABLE_NAME, rc.DELETE_RULE,
              GROUP_CONCAT(k.COLUMN_NAME ORDER BY k.ORDINAL_POSITION) AS COLS
         FROM information_schema.REFERENTIAL_CONSTRAINTS rc
         JOIN information_schema.KEY_COLUMN_USAGE k
           ON k.CONSTRAINT_SCHEMA = rc.CONSTRAINT_SCHEMA AND k.CONSTRAINT_NAME = rc.CONSTRAINT_NAME AND k.TABLE_NAME = rc.TABLE_NAME
        WHERE rc.CONSTRAINT_SCHEMA = DATABASE()
        GROUP BY rc.CONSTRAINT_NAME, rc.TABLE_NAME, rc.REFERENCED_TABLE_NAME, rc.DELETE_RULE`,
    );
    const actual = fks.map((f) => `${f.TABLE_NAME}(${f.COLS}) -> ${f.REFERENCED_TABLE_NAME} ON DELETE ${f.DELETE_RULE}`).sort();
    const rule: Record<string, string> = { Cascade: 'CASCADE', SetNull: 'SET NULL', Restrict: 'RESTRICT', NoAction: 'NO ACTION' };
    const expected: string[] = [];
    for (const m of models) {
      for (const f of m.fields) {
        if (f.kind !== 'object' || !f.relationFromFields?.length) continue;
        const target = models.find((x) => x.name === f.type)!;
        const cols = f.relationFromFields.map((n) => m.fields.find((x) => x.name === n)!).map((x) => x.dbName ?? x.name);
        const onDelete = f.relationOnDelete ?? (f.isRequired ? 'Restrict' : 'SetNull');
        expected.push(`${m.dbName ?? m.name}(${cols.join(',')}) -> ${target.dbName ?? target.name} ON DELETE ${rule[onDelete]}`);
      }
    }
    expect(actual).toEqual(expected.sort());
  });

  it('the generated client reads and writes through the migrated tables', async () => {
    const ctx = await db.prisma.vmContext.create({
      data: { contextId: 'ctx-agree', vmName: 'vm ü 1', vcenterHost: 'vc.local', vmMoref: 'vm-1' },
    });
    expect(ctx.cbtState).toBe('unknown');
    await db.prisma.vmDisk.create({
      data: { id: 'd0', vmContextId: ctx.contextId, diskIndex: 0, deviceKey: 2000, capacityBytes: 5n * 1024n ** 4n },
    });
    const disk = await db.prisma.vmDisk.findUniqueOrThrow({ where: { id: 'd0' } });
    expect(disk.capacityBytes).toBe(5n * 1024n ** 4n);
    await db.prisma.vmContext.delete({ where: { contextId: 'ctx-agree' } });
    expect(await db.prisma.vmDisk.count()).toBe(0); // ON DELETE CASCADE
  });
});
