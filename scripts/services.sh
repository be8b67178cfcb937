#!/usr/bin/env bash
# Start, stop or show the Sendense services on this host (built apps, logs and
# pids under .sendense/run). Usage: scripts/services.sh start|stop|stop-apps|status
# (stop also stops the demo's VMware stand-in; stop-apps leaves it running)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
RUN="$STATE/run"
APPS=(nbd-exporter restore-service capture-agent backup-worker api-gateway)
mkdir -p "$RUN"

# A pid file can outlive its process (reboot): check that the pid is still ours.
running() {
  [ -f "$RUN/$1.pid" ] || return 1
  local pid; pid=$(cat "$RUN/$1.pid")
  kill -0 "$pid" 2>/dev/null || return 1
  case "$1" in
    vcsim) tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q sendense-vcsim ;;
    *) tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "dist/apps/$1/main.js" ;;
  esac
}

start() {
  for app in "${APPS[@]}"; do
    [ -f "dist/apps/$app/main.js" ] || { log "skipping $app: not built"; continue; }
    if running "$app"; then log "$app already running (pid $(cat "$RUN/$app.pid"))"; continue; fi
    nohup node "dist/apps/$app/main.js" >"$RUN/$app.log" 2>&1 &
    echo $! >"$RUN/$app.pid"
    log "started $app (pid $!, log $RUN/$app.log)"
  done
}

stop() {
  for app in "$@"; do
    running "$app" || { rm -f "$RUN/$app.pid"; continue; }
    pid=$(cat "$RUN/$app.pid"); kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then log "$app did not stop in 10 s, killing"; kill -KILL "$pid" 2>/dev/null || true; fi
    rm -f "$RUN/$app.pid"; log "stopped $app"
  done
}

status() {
  for app in "${APPS[@]}"; do
    if running "$app"; then echo "$app: running (pid $(cat "$RUN/$app.pid"))"; else echo "$app: stopped"; fi
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop "${APPS[@]}" vcsim ;;
  stop-apps) stop "${APPS[@]}" ;;
  status) status ;;
  *) die "usage: $0 start|stop|stop-apps|status" ;;
esac
