import { Command, CommanderError } from 'commander';
import { processIo, type Io } from './context';
import { EXIT, EXIT_HELP, toCliError } from './errors';
import type { ProgressEvent } from './progress';
import { configPath } from './settings';
import { addApiKeyCommands } from './commands/apikey';
import { addBackupCommands } from './commands/backup';
import { addInventoryCommands } from './commands/inventory';
import { addJobCommands } from './commands/job';
import { addPolicyCommands } from './commands/policy';
import { addRepoCommands } from './commands/repo';
import { addRestoreCommands } from './commands/restore';
import { addRetentionCommands } from './commands/retention';
import { addCompletionCommand, addSessionCommands } from './commands/session';
import { example } from './commands/kit';

/**
 * sendense-ctl: the operator's command line. Everything goes through the
 * REST API (libs/api-client) except `apikey create`, which bootstraps the
 * first admin key in the database.
 */
export function buildProgram(io: Io = processIo()): Command {
  const program = new Command('sendense-ctl')
    .description('Sendense backup command line: back up VMware VMs, find restore points, pull files out')
    .option('--api-url <url>', 'API gateway (else SENDENSE_API_URL, else the config file, else http://127.0.0.1:8080)')
    .option('--api-key <key>', 'API key (else SENDENSE_API_KEY, else the config file)')
    .option('--json', 'machine-readable output: one JSON document (JSON lines for streams), nothing else on stdout')
    .option('-q, --quiet', 'no progress or notes on stderr')
    .showHelpAfterError('(add --help for usage and examples)')
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .exitOverride()
    .addHelpText(
      'after',
      `
Settings: flags, then SENDENSE_API_URL / SENDENSE_API_KEY, then ${configPath(io.env).replace(io.env['HOME'] ?? '\0', '~')}
(written by "sendense-ctl login"; refused when others can read it).

${EXIT_HELP}
${example('sendense-ctl login --api-url http://backup01:8080 --api-key sdk_...', 'sendense-ctl backup start --vm web01 --type incremental --wait', 'sendense-ctl backup extract --backup-id ID --file /etc/hosts --output ./hosts')}`,
    );

  // One module per noun (commands/); the order here is the order of --help and of the completions.
  addSessionCommands(program, io);
  addBackupCommands(program, io);
  addRestoreCommands(program, io);
  addJobCommands(program, io);
  addInventoryCommands(program, io);
  addRepoCommands(program, io);
  addRetentionCommands(program, io);
  addPolicyCommands(program, io);
  addApiKeyCommands(program, io);
  addCompletionCommand(program, io);
  return program;
}

/** Run the CLI; answers the exit code (main.ts exits with it). */
export async function runCli(argv: string[], io: Io = processIo()): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv);
    return EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version end here too, with exit code 0.
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    const e = toCliError(err);
    io.stderr.write(`sendense-ctl: ${e.message}\n${e.hint ? `  next: ${e.hint}\n` : ''}`);
    return e.code;
  }
}

export type { ProgressEvent };
