#!/usr/bin/env bash
# `npm test`: installs what the tests need, builds the services, runs every
# test (real qemu, nbd-server, MariaDB, Redis) with coverage. Extra arguments
# go to Jest (e.g. `npm test -- libs/storage`).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
bash scripts/setup.sh --no-migrate
# setup.sh may have written credentials to .sendense/env: read them now.
. "$(dirname "$0")/lib.sh"
log "building the VMware stand-in (tools/vcsim) and the services"
sh tools/vcsim/build.sh
# Never from Nx's cache: the Prisma client the bundles embed is generated (gitignored), so Nx cannot
# see it change; a cached bundle of an older schema answered every mount with a Prisma validation
# error (500) in fresh-clone CI runs. nx.json also hashes prisma/schema.prisma into every build.
npx nx run-many -t build --output-style=static --parallel=2 --skip-nx-cache >/tmp/sendense-build.log 2>&1 || { tail -50 /tmp/sendense-build.log; die "build failed"; }
log "type-checking every project (the test runner only transpiles)"
bash scripts/typecheck.sh || die "type errors (above)"
log "linting (house rules: eslint.config.mjs; zero findings)"
# The module-boundary rule reads the project graph the build above computed.
npx eslint . --max-warnings 0 || die "lint findings (above): fix them or, where a rule is wrong for a file, say why in eslint.config.mjs"
log "checking the format (Prettier: .prettierrc, .prettierignore)"
npx prettier --check . --log-level warn || die "files not in Prettier's format (above): run npx prettier --write on them"
log "running the tests"
mkdir -p coverage
set +e
npx jest -c jest.config.cts --ci --coverage --json --outputFile=coverage/jest-results.json "$@"
rc=$?
set -e
if [ -f coverage/jest-results.json ]; then
  node -e 'const r=require("./coverage/jest-results.json"); console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests} skipped`)'
fi
exit $rc
