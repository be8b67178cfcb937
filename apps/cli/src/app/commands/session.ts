import type { Command } from 'commander';
import { unwrap } from '@sendense/api-client';
import type { Io } from '../context';
import { bashCompletion, zshCompletion } from '../completion';
import { CliError, EXIT } from '../errors';
import { details } from '../format';
import { configPath, validateApiUrl, writeConfigFile } from '../settings';
import { actions, example, oneOf, type Act } from './kit';

/** sendense-ctl login | config | health: the connection to the gateway. */
export function addSessionCommands(program: Command, io: Io): void {
  const act = actions(io);
  login(program, act, io);
  config(program, act, io);
  health(program, act);
}

/** sendense-ctl completion bash|zsh: generated from the whole command tree, so add it last. */
export function addCompletionCommand(program: Command, io: Io): void {
  program
    .command('completion')
    .description('print a shell completion script')
    .argument('<shell>', 'bash or zsh', oneOf(['bash', 'zsh'] as const))
    .addHelpText('after', example('source <(sendense-ctl completion bash)', 'sendense-ctl completion zsh > "${fpath[1]}/_sendense-ctl"'))
    .action((shell: 'bash' | 'zsh') => {
      io.stdout.write(shell === 'bash' ? bashCompletion(program) : zshCompletion(program));
    });
}

/** sendense-ctl login */
function login(program: Command, act: Act, io: Io): void {
  program
    .command('login')
    .description(`store the gateway URL and API key in ${configPath(io.env).replace(io.env['HOME'] ?? '\0', '~')} (mode 0600), after checking them`)
    .option('--no-verify', 'store without checking the key against the gateway')
    .addHelpText('after', example('sendense-ctl login --api-url http://backup01:8080 --api-key sdk_abc_...', 'SENDENSE_API_KEY=sdk_... sendense-ctl login'))
    .action(
      act(async (ctx, o: { verify: boolean }) => {
        const s = ctx.settings;
        if (!s.apiKey)
          throw new CliError('no API key to store', EXIT.usage, 'give it with --api-key sdk_... (create one: sendense-ctl apikey create --role operator)');
        if (o.verify) {
          // Any authenticated read proves the key; viewers may read VMs.
          await unwrap(ctx.api.GET('/api/v1/vms'));
        }
        const path = configPath(io.env);
        writeConfigFile(path, { api_url: validateApiUrl(s.apiUrl, 'the API URL'), api_key: s.apiKey });
        ctx.result({ config: path, api_url: s.apiUrl, verified: o.verify }, () => `stored ${s.apiUrl} and the key in ${path} (mode 0600)`);
      }),
    );
}

/** sendense-ctl config */
function config(program: Command, act: Act, io: Io): void {
  program
    .command('config')
    .description('show the connection settings in effect and where each comes from (never the key)')
    .addHelpText('after', example('sendense-ctl config'))
    .action(
      act(async (ctx) => {
        const s = ctx.settings;
        const key = s.apiKey ? `${s.apiKey.slice(0, 12)}…` : null;
        ctx.result({ api_url: s.apiUrl, api_url_from: s.source.apiUrl, api_key: key, api_key_from: s.source.apiKey, config_file: configPath(io.env) }, () =>
          details([
            ['api url', `${s.apiUrl} (${s.source.apiUrl})`],
            ['api key', key ? `${key} (${s.source.apiKey})` : 'none'],
            ['config file', configPath(io.env)],
          ]),
        );
      }),
    );
}

/** sendense-ctl health */
function health(program: Command, act: Act): void {
  program
    .command('health')
    .description('is the gateway up, and the services behind it?')
    .addHelpText('after', example('sendense-ctl health'))
    .action(
      act(async (ctx) => {
        const res = await ctx.raw.request('GET', '/api/v1/health', { allow: [503] });
        const doc = (await res.json()) as { status: string; checks?: Record<string, { status: string; error?: string }> };
        ctx.result(doc, () =>
          [
            `gateway ${ctx.settings.apiUrl}: ${doc.status}`,
            ...Object.entries(doc.checks ?? {}).map(([k, v]) => `  ${k.padEnd(16)} ${v.status}${v.error ? `  ${v.error}` : ''}`),
          ].join('\n'),
        );
        if (res.status !== 200)
          throw new CliError(`the gateway reports ${doc.status}`, EXIT.unreachable, "see the failing checks above and that service's log");
      }),
    );
}
