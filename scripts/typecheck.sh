#!/usr/bin/env bash
# Type-check every project (sources and tests) with strict TypeScript.
# Incremental: a second run re-checks only what changed (state in tmp/tsc/).
#   bash scripts/typecheck.sh [name-filter]   e.g. `bash scripts/typecheck.sh api-gateway`
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p tmp/tsc
status=0
for cfg in libs/*/tsconfig.lib.json libs/*/tsconfig.spec.json apps/*/tsconfig.app.json apps/*/tsconfig.spec.json tests/tsconfig.spec.json bench/tsconfig.json; do
  [ -f "$cfg" ] || continue
  case "$cfg" in *"${1:-}"*) ;; *) continue ;; esac
  info="tmp/tsc/$(echo "$cfg" | tr '/' '_').tsbuildinfo"
  if ! out=$(node_modules/.bin/tsc -p "$cfg" --noEmit --incremental --tsBuildInfoFile "$info" 2>&1); then echo "$out"; status=1; fi
done
exit $status
