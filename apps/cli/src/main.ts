import { buildProgram } from './app/program';

buildProgram()
  .parseAsync(process.argv)
  .catch((err: unknown) => {
    process.stderr.write(`sendense-ctl: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
