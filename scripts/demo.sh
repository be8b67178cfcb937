#!/usr/bin/env bash
# The main job (`npm run demo`): set up this host, build and start the
# services and the bundled VMware stand-in, then back up a VM and restore a
# file from two restore points (scripts/demo.ts). Safe to run again.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
bash scripts/setup.sh
# setup.sh may have written credentials to .sendense/env: read them now.
. "$(dirname "$0")/lib.sh"
log "building the VMware stand-in (tools/vcsim) and the services"
sh tools/vcsim/build.sh
npx nx run-many -t build --output-style=static --parallel=2 >/tmp/sendense-build.log 2>&1 || { tail -50 /tmp/sendense-build.log; die "build failed"; }

RUN="$STATE/run"; mkdir -p "$RUN" /var/lib/sendense
if ! { [ -f "$RUN/vcsim.pid" ] && kill -0 "$(cat "$RUN/vcsim.pid")" 2>/dev/null; }; then
  log "starting the VMware stand-in (govmomi simulator + qemu disks)"
  rm -f "$RUN/vcsim.json"
  nohup tools/vcsim/run.sh --config tools/vcsim/demo-vms.json --state-dir /var/lib/sendense/demo-vcsim --listen 127.0.0.1:8989 \
    >"$RUN/vcsim.out" 2>"$RUN/vcsim.log" &
  echo $! >"$RUN/vcsim.pid"
  for _ in $(seq 1 240); do grep -q '"event":"ready"' "$RUN/vcsim.out" 2>/dev/null && break; sleep 0.5; done
  grep -q '"event":"ready"' "$RUN/vcsim.out" || { tail -20 "$RUN/vcsim.log"; die "the stand-in did not start"; }
  grep '"event":"ready"' "$RUN/vcsim.out" | head -n 1 >"$RUN/vcsim.json"
fi

# Restart the services so a re-run uses what was just built.
bash scripts/services.sh stop-apps
bash scripts/services.sh start
port="${GATEWAY_PORT:-8080}"
log "waiting for the API gateway on port $port"
for _ in $(seq 1 120); do curl -fsS -o /dev/null "http://127.0.0.1:$port/api/v1/health" 2>/dev/null && break; sleep 0.5; done
curl -fsS -o /dev/null "http://127.0.0.1:$port/api/v1/health" || { tail -20 "$RUN/api-gateway.log"; die "the API gateway is not healthy"; }
if [ ! -s "$STATE/admin.key" ] || ! curl -fsS -o /dev/null -H "X-API-Key: $(cat "$STATE/admin.key")" "http://127.0.0.1:$port/api/v1/apikeys"; then
  (umask 077; bin/sendense-ctl apikey create --role admin --name "demo admin" >"$STATE/admin.key")
  log "admin API key written to $STATE/admin.key"
fi
log "running the demo: backup, change, incremental, file restore"
npx tsx --tsconfig tsconfig.base.json scripts/demo.ts

# What to do next, with what this build has (the console and the CLI's
# backup commands are named only when they answer).
base="http://127.0.0.1:$port"
if [ "$(curl -s -o /dev/null -w '%{http_code}' "$base/")" = 200 ]; then console="$base/"; else console="(not in this build; use the API below)"; fi
cli_help=$(bin/sendense-ctl --help 2>/dev/null || true)
if grep -qE '^ +backup( |$)' <<<"$cli_help"; then
  cli="bin/sendense-ctl backup chain --vm demo-web01    (and: backup list, backup extract, --help)"
else
  cli="bin/sendense-ctl apikey create --role viewer   (this build's CLI has only apikey)"
fi
cat <<EOF

Sendense is running (demo):
  Web console   $console
                log in with the admin API key in $STATE/admin.key
  REST API      $base/api/v1   (Swagger UI $base/api/docs, Bull Board $base/admin/queues;
                browsers: any user name, the key as password)
  CLI           export SENDENSE_API_KEY=\$(cat $STATE/admin.key)
                $cli
  Restored      $STATE/demo/index.html.before, index.html.after
  Logs          $RUN/*.log
  Stop          npm run demo:stop   (services, mounts, NBD servers and the VMware stand-in)
EOF
