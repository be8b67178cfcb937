import type { Command } from 'commander';
import { loadEnv, commonEnv } from '@sendense/config';
import { API_ROLES, ApiKeyRepository, createPrismaClient, type ApiRole } from '@sendense/db';
import { unwrap } from '@sendense/api-client';
import type { Io } from '../context';
import { table } from '../format';
import { actions, example, oneOf, type Act } from './kit';

/** sendense-ctl apikey create|list|revoke (create talks to the database, to bootstrap the first admin key). */
export function addApiKeyCommands(program: Command, io: Io): void {
  const act = actions(io);
  const apikey = program.command('apikey').description('API keys (create talks to DATABASE_URL directly, to bootstrap the first admin key)');
  create(apikey, act, io);
  list(apikey, act);
  revoke(apikey, act);
}

/** apikey create */
function create(apikey: Command, act: Act, io: Io): void {
  apikey
    .command('create')
    .description('create an API key and print it once (needs DATABASE_URL)')
    .requiredOption('--role <role>', `one of ${API_ROLES.join(', ')}`, oneOf(API_ROLES))
    .option('--name <name>', 'what the key is for', 'created by sendense-ctl')
    .addHelpText('after', example('DATABASE_URL=mysql://root@127.0.0.1/sendense sendense-ctl apikey create --role admin --name "first admin"'))
    .action(
      act(async (ctx, o: { role: ApiRole; name: string }) => {
        const { DATABASE_URL } = loadEnv({ DATABASE_URL: commonEnv.DATABASE_URL }, io.env);
        const prisma = createPrismaClient(DATABASE_URL);
        try {
          const k = await new ApiKeyRepository(prisma).create(o.name, o.role);
          ctx.result(k, () => k.key);
          ctx.note(`created ${k.role} key ${k.id} ("${k.name}"). It is shown only now: store it safely (sendense-ctl login --api-key ...).`);
        } finally {
          await prisma.$disconnect();
        }
      }),
    );
}

/** apikey list */
function list(apikey: Command, act: Act): void {
  apikey
    .command('list')
    .description('API keys (never the keys themselves); admin keys only')
    .addHelpText('after', example('sendense-ctl apikey list'))
    .action(
      act(async (ctx) => {
        const ks = await unwrap(ctx.api.GET('/api/v1/apikeys'));
        ctx.result(ks, () =>
          table(
            [{ header: 'ID', min: 36 }, { header: 'ROLE' }, { header: 'KEY' }, { header: 'STATE' }, { header: 'NAME' }],
            ks.map((k) => [k.id, k.role, `sdk_${k.prefix}_…`, k.revokedAt ? 'revoked' : 'active', k.name]),
            ctx.width,
          ),
        );
      }),
    );
}

/** apikey revoke */
function revoke(apikey: Command, act: Act): void {
  apikey
    .command('revoke')
    .description('revoke an API key')
    .argument('<id>')
    .addHelpText('after', example('sendense-ctl apikey revoke 5d0e...'))
    .action(
      act(async (ctx, id: string) => {
        await unwrap(ctx.api.DELETE('/api/v1/apikeys/{id}', { params: { path: { id } } }));
        ctx.result({ revoked: id }, () => `revoked ${id}`);
      }),
    );
}
