/**
 * Child process for the crash test: runs one consolidation and SIGKILLs
 * itself when it reaches the given step (the n-th time), like a power cut
 * or an OOM kill would.
 * argv: <root> <fromId> <toId> <step> [nth]
 */
import { LocalQcow2Repository } from '../src/lib/local-repository';

async function main(): Promise<void> {
  const [root, fromId, toId, crashStep, nth] = process.argv.slice(2);
  let seen = 0;
  const repo = await LocalQcow2Repository.open({
    root,
    space: { marginBytes: 0 },
    onConsolidationStep: (step) => {
      if (step === crashStep && ++seen >= Number(nth ?? '1')) {
        process.stdout.write(`killing myself at ${step}\n`);
        process.kill(process.pid, 'SIGKILL');
      }
    },
  });
  await repo.consolidate({ fromId, toId });
  process.stdout.write('finished\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(2);
});
