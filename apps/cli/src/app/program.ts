import { Command, InvalidArgumentError } from 'commander';
import { loadEnv, commonEnv } from '@sendense/config';
import { API_ROLES, ApiKeyRepository, createPrismaClient, type ApiRole } from '@sendense/db';

/**
 * sendense-ctl: the operator's command line. Commands that bootstrap the
 * system (the first admin key) talk to the database directly; the rest go
 * through the REST API.
 */
export function buildProgram(out: (s: string) => void = (s) => process.stdout.write(s)): Command {
  const program = new Command('sendense-ctl').description('Sendense backup command line').showHelpAfterError();

  const apikey = program.command('apikey').description('manage API keys (talks to DATABASE_URL directly)');
  apikey
    .command('create')
    .description('create an API key and print it once')
    .requiredOption('--role <role>', `one of ${API_ROLES.join(', ')}`, (v: string) => {
      if (!(API_ROLES as readonly string[]).includes(v)) throw new InvalidArgumentError(`expected one of ${API_ROLES.join(', ')}`);
      return v as ApiRole;
    })
    .option('--name <name>', 'what the key is for', 'created by sendense-ctl')
    .option('--json', 'print JSON')
    .action(async (opts: { role: ApiRole; name: string; json?: boolean }) => {
      const { DATABASE_URL } = loadEnv({ DATABASE_URL: commonEnv.DATABASE_URL });
      const prisma = createPrismaClient(DATABASE_URL);
      try {
        const k = await new ApiKeyRepository(prisma).create(opts.name, opts.role);
        if (opts.json) out(`${JSON.stringify(k)}\n`);
        else out(`${k.key}\n`);
        if (!opts.json) process.stderr.write(`created ${k.role} key ${k.id} ("${k.name}"). It is shown only now: store it safely.\n`);
      } finally {
        await prisma.$disconnect();
      }
    });
  apikey
    .command('list')
    .description('list API keys (never the keys themselves)')
    .action(async () => {
      const { DATABASE_URL } = loadEnv({ DATABASE_URL: commonEnv.DATABASE_URL });
      const prisma = createPrismaClient(DATABASE_URL);
      try {
        for (const k of await new ApiKeyRepository(prisma).list()) {
          out(`${k.id}  ${k.role.padEnd(8)}  sdk_${k.prefix}_…  ${k.revokedAt ? 'revoked' : 'active '}  ${k.name}\n`);
        }
      } finally {
        await prisma.$disconnect();
      }
    });
  return program;
}
