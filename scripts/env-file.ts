/**
 * Prints the environment file of an installed host (/etc/sendense/sendense.env)
 * from libs/config, so it names every setting the services read and cannot
 * drift from them: each variable with its description, set when a value is
 * given as NAME=value on the command line, else commented out at its default.
 * Used by scripts/install.sh: `tsx scripts/env-file.ts DATABASE_URL=... NODE_NAME=...`
 */
import { allEnvGroups } from '@sendense/config';

const given = new Map<string, string>();
for (const arg of process.argv.slice(2)) {
  const eq = arg.indexOf('=');
  if (eq <= 0) throw new Error(`expected NAME=value, got ${JSON.stringify(arg)}`);
  const value = arg.slice(eq + 1);
  if (/[\0\n\r]/.test(value)) throw new Error(`the value of ${arg.slice(0, eq)} holds a newline or NUL`);
  given.set(arg.slice(0, eq), value);
}

const known = new Set<string>();
const out: string[] = [
  '# Settings of the Sendense services on this host, read by systemd',
  '# (EnvironmentFile= in /etc/systemd/system/sendense-*.service) before the',
  '# services start; keep it mode 0600: it holds the database password and keys.',
  '# A commented line shows the default. After a change:',
  '#   systemctl restart sendense.target',
];
for (const [group, vars] of Object.entries(allEnvGroups)) {
  const lines: string[] = [];
  for (const [name, spec] of Object.entries(vars)) {
    if (known.has(name)) continue;
    known.add(name);
    lines.push(`# ${spec.description}`);
    if (given.has(name)) lines.push(`${name}=${given.get(name)}`);
    else lines.push(`#${name}=${name === 'NODE_NAME' ? '(the host name)' : (spec.default ?? '')}`);
  }
  if (lines.length) out.push('', `## ${group}`, ...lines);
}
const unknown = [...given.keys()].filter((k) => !known.has(k));
if (unknown.length) throw new Error(`not a setting of libs/config: ${unknown.join(', ')}`);
process.stdout.write(`${out.join('\n')}\n`);
