/** Prints the README's table of environment variables from libs/config. */
import { allEnvGroups } from '@sendense/config';

const rows: string[] = ['| variable | used by | default | meaning |', '| --- | --- | --- | --- |'];
const seen = new Set<string>();
for (const [group, vars] of Object.entries(allEnvGroups)) {
  for (const [name, spec] of Object.entries(vars)) {
    if (seen.has(name)) continue;
    seen.add(name);
    const def = name === 'NODE_NAME' ? 'the host name' : spec.default ? `\`${spec.default}\`` : '(none)';
    rows.push(`| \`${name}\` | ${group} | ${def} | ${spec.description} |`);
  }
}
process.stdout.write(rows.join('\n') + '\n');
