/**
 * `npm run bench -- <name> [--json] [args]` runs bench/<name>.bench.ts.
 * Each bench prints one JSON object per line on stdout (with --json) and
 * nothing else there; progress and logs go to stderr.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

async function main(): Promise<void> {
  const [name, ...rest] = process.argv.slice(2);
  const available = readdirSync(__dirname)
    .filter((f) => f.endsWith('.bench.ts'))
    .map((f) => f.replace(/\.bench\.ts$/, ''));
  if (!name || !available.includes(name)) {
    process.stderr.write(`usage: npm run bench -- <name> [--json]\navailable: ${available.join(', ') || '(none)'}\n`);
    process.exit(2);
  }
  const file = join(__dirname, `${name}.bench.ts`);
  if (!existsSync(file)) throw new Error(`no bench ${file}`);
  const mod = (await import(file)) as { main?: (args: string[]) => Promise<void> };
  if (typeof mod.main !== 'function') throw new Error(`${file} does not export main(args)`);
  await mod.main(rest);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
