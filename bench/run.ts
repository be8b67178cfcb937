/**
 * `npm run bench -- <name> [--json] [args]` runs bench/<name>.bench.ts.
 * `npm run bench -- all --json` runs every bench in turn (each with its
 * default, short settings; a failing bench is reported on stderr and the
 * others still run, the exit code says one failed).
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
  if (!name || (name !== 'all' && !available.includes(name))) {
    process.stderr.write(`usage: npm run bench -- <name>|all [--json]\navailable: ${available.join(', ') || '(none)'}\n`);
    process.exit(2);
  }
  if (name !== 'all') return runOne(name, rest);
  let failed = 0;
  for (const b of available) {
    const t0 = Date.now();
    process.stderr.write(`=== bench ${b}\n`);
    try {
      await runOne(b, rest);
      process.stderr.write(`=== bench ${b} done in ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
    } catch (err) {
      failed++;
      process.stderr.write(`=== bench ${b} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    }
  }
  if (failed) process.exit(1);
}

async function runOne(name: string, args: string[]): Promise<void> {
  const file = join(__dirname, `${name}.bench.ts`);
  if (!existsSync(file)) throw new Error(`no bench ${file}`);
  const mod = (await import(file)) as { main?: (args: string[]) => Promise<void> };
  if (typeof mod.main !== 'function') throw new Error(`${file} does not export main(args)`);
  await mod.main(args);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
