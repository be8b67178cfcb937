#!/usr/bin/env bash
# Type-check every project (sources and tests) with strict TypeScript.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
for cfg in libs/*/tsconfig.lib.json libs/*/tsconfig.spec.json apps/*/tsconfig.app.json apps/*/tsconfig.spec.json tests/tsconfig.spec.json bench/tsconfig.json; do
  [ -f "$cfg" ] || continue
  if ! out=$(npx tsc -p "$cfg" --noEmit 2>&1); then echo "$out"; status=1; fi
done
exit $status
