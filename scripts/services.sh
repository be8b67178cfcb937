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
    # The log of a process that ended (crashed, killed) keeps its last words: it becomes <app>.log.1.
    if [ -s "$RUN/$app.log" ]; then mv -f "$RUN/$app.log" "$RUN/$app.log.1"; log "kept the previous $app log as $RUN/$app.log.1"; fi
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

# Stop order: callers first (gateway, worker), then what they call, so no
# new export or mount is asked for while the privileged services shut down.
STOP_ORDER=(api-gateway backup-worker capture-agent restore-service nbd-exporter)

# After a stop nothing the services or the stand-in started may be left:
# NBD servers, FUSE exports and mounts are theirs to end. Name any survivor.
leftovers() {
  local found=0 pid cmd
  local nbd_state="${NBD_STATE_DIR:-/var/lib/sendense/nbd}" mnt="${RESTORE_MOUNT_ROOT:-/mnt/sendense}" rs="${RESTORE_STATE_DIR:-/var/lib/sendense/restore}"
  for pid in $(pgrep -f -- "$nbd_state/|$rs/|/var/lib/sendense/demo-vcsim|$mnt/" || true); do
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || continue
    log "still running after stop: pid $pid: $cmd"; found=1
  done
  if findmnt -rn -o TARGET | grep -q "^$mnt/"; then
    log "still mounted after stop: $(findmnt -rn -o TARGET | grep "^$mnt/" | tr '\n' ' ')"; found=1
  fi
  [ "$found" = 0 ] || die "some processes or mounts outlived the services (listed above); see docs/troubleshooting.md"
}

case "${1:-}" in
  start) start ;;
  stop) stop "${STOP_ORDER[@]}" vcsim; leftovers ;;
  stop-apps) stop "${STOP_ORDER[@]}" ;;
  status) status ;;
  *) die "usage: $0 start|stop|stop-apps|status" ;;
esac
