#!/usr/bin/env bash
# Starts a Redis that only the Sendense services get into, the way setup.sh
# starts one when none runs yet: its password-less `default` user is off and
# the ACL user `sendense` logs in with the password in $SENDENSE_REDIS_PASSWORD
# (an environment variable, so it is never on a command line `ps` shows).
# The config file holds the password: it is written mode 0600.
#   SENDENSE_REDIS_PASSWORD=... redis-start.sh <config-file> <data-dir> <log-file> [port]
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: SENDENSE_REDIS_PASSWORD=... $0 <config-file> <data-dir> <log-file> [port]" >&2; exit 2; }
conf=$1 dir=$2 logfile=$3 port=${4:-6379}
pw=${SENDENSE_REDIS_PASSWORD:?SENDENSE_REDIS_PASSWORD must hold the password of the Redis user sendense}
# Letters and digits only: the password goes into a config line and into REDIS_URL unquoted.
case "$pw" in *[!A-Za-z0-9]*) echo "error: SENDENSE_REDIS_PASSWORD must be letters and digits only" >&2; exit 2 ;; esac
case "$port" in *[!0-9]* | '') echo "error: port must be a number, got '$port'" >&2; exit 2 ;; esac
mkdir -p "$dir" "$(dirname "$logfile")" "$(dirname "$conf")"
(
  umask 077
  cat >"$conf.tmp" <<EOF
# Written by scripts/redis-start.sh (Sendense). Holds a password: keep it 0600.
bind 127.0.0.1 -::1
port $port
daemonize yes
save ""
appendonly no
dir $dir
logfile $logfile
pidfile $dir/redis-$port.pid
user default off
user sendense on >$pw ~* &* +@all
EOF
)
mv "$conf.tmp" "$conf"
chmod 600 "$conf"
exec redis-server "$conf"
