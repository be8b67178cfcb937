#!/usr/bin/env bash
# The main job (`npm run demo`): set up this host, build and start the
# services, create an admin API key, and check health.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
bash scripts/setup.sh
log "building the VMware stand-in (tools/vcsim) and the services"
sh tools/vcsim/build.sh
npx nx run-many -t build --output-style=static --parallel=2 >/tmp/sendense-build.log 2>&1 || { tail -50 /tmp/sendense-build.log; die "build failed"; }
bash scripts/services.sh start
port="${GATEWAY_PORT:-8080}"
log "waiting for the API gateway on port $port"
for _ in $(seq 1 120); do curl -fsS -o /dev/null "http://127.0.0.1:$port/api/v1/health" 2>/dev/null && break; sleep 0.5; done
if [ ! -f "$STATE/admin.key" ]; then
  (umask 077; bin/sendense-ctl apikey create --role admin --name "demo admin" >"$STATE/admin.key")
  log "admin API key written to $STATE/admin.key"
fi
curl -sS "http://127.0.0.1:$port/api/v1/health"; echo
log "services are running: API http://127.0.0.1:$port/api/v1, docs /api/docs, queues /admin/queues"
log "(log in to the docs and Bull Board with any user name and the key in $STATE/admin.key as password)"
log "stop them with: bash scripts/services.sh stop"
