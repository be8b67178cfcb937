#!/usr/bin/env bash
# Installs the BUILT product on a Debian 12 host as systemd services
# (docs/admin-guide.md). Run from a checkout where `npm run setup` and the
# build (`npx nx run-many -t build`) have run. Safe to run again: that is an
# upgrade (the code is replaced, settings and data are kept).
#
#   scripts/install.sh [--root DIR] [--from DIR] [--database-url URL]
#                      [--redis-url URL] [--node-name NAME] [--no-start] [--no-migrate]
#
#   --root DIR        install into DIR instead of / (a throwaway root for tests
#                     or image builds: nothing is started, migrated or reloaded)
#   --from DIR        the built checkout to install (default: this one; the
#                     units and the env file always come from this one)
#   --database-url    DATABASE_URL for a new env file (default: a local MariaDB
#                     user `sendense` with a generated password, created here)
#   --redis-url       REDIS_URL for a new env file (default: the local Redis as
#                     ACL user `sendense` with a generated password, created here)
#   --node-name       NODE_NAME for a new env file (default: the host name)
#   --no-start        install and enable, but do not (re)start the services
#   --no-migrate      do not bring the database up to date
#
# Lays out: /opt/sendense (code, root-owned), /etc/sendense/sendense.env
# (0600 root, read by systemd), /etc/systemd/system/sendense*.{service,target},
# the `sendense` system user (sysusers.d) and the state directories
# (tmpfiles.d), /usr/local/bin/sendense-ctl.
set -euo pipefail
log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"   # units, env-file.ts
dest=/ from="$here"
db_url='' redis_url='' node_name="$(hostname)" start=1 migrate=1
while [ $# -gt 0 ]; do
  case "$1" in
    --root) dest="${2:?--root needs a directory}"; shift ;;
    --from) from="${2:?--from needs a directory}"; shift ;;
    --database-url) db_url="${2:?--database-url needs a URL}"; shift ;;
    --redis-url) redis_url="${2:?--redis-url needs a URL}"; shift ;;
    --node-name) node_name="${2:?--node-name needs a name}"; shift ;;
    --no-start) start=0 ;;
    --no-migrate) migrate=0 ;;
    -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done

if [ "$(id -u)" != 0 ]; then
  die "please run as root (e.g. sudo $0 $*): it creates the sendense user, /opt/sendense, /etc/sendense and systemd units"
fi
dest="$(mkdir -p "$dest" && cd "$dest" && pwd)"
live=0; [ "$dest" = / ] && live=1
R="${dest%/}"           # prefix for paths in the target root ('' when live)
PREFIX=/opt/sendense

apps=(nbd-exporter restore-service capture-agent backup-worker api-gateway)
for app in "${apps[@]}"; do
  [ -f "$from/dist/apps/$app/main.js" ] || die "$from is not built ($from/dist/apps/$app/main.js is missing): run npm run setup, then npx nx run-many -t build, then this again"
done
[ -d "$from/node_modules" ] || die "$from/node_modules is missing: run npm run setup (npm ci) first"
for cmd in rsync systemd-sysusers systemd-tmpfiles systemctl; do
  command -v "$cmd" >/dev/null || die "$cmd is needed (apt-get install rsync systemd)"
done
node_bin="$(command -v node || true)"
[ "$node_bin" = /usr/bin/node ] || log "warning: the units run /usr/bin/node, but node here is ${node_bin:-missing} (install Node.js 20+ from Debian or NodeSource)"

log "copying $from to $R$PREFIX"
mkdir -p "$R$PREFIX"
# The whole built tree: dist/ runs, node_modules/ is what dist/ requires, and
# the sources and prisma/ let `npm run db:migrate` run here on upgrades.
rsync -a --delete --chown=root:root --chmod=go-w \
  --exclude=/.git --exclude=/.sendense --exclude=/.nx --exclude=/coverage --exclude=/tmp \
  --exclude=/test-output --exclude=node_modules/.cache \
  "$from/" "$R$PREFIX/"
chmod 0755 "$R$PREFIX"

log "installing the systemd units, the sendense user and the state directories"
units=(sendense.target)
for app in "${apps[@]}"; do units+=("sendense-$app.service"); done
mkdir -p "$R/etc/systemd/system" "$R/usr/lib/sysusers.d" "$R/usr/lib/tmpfiles.d" "$R/usr/local/bin"
for u in "${units[@]}"; do install -m 0644 -o root -g root "$here/deploy/systemd/$u" "$R/etc/systemd/system/$u"; done
install -m 0644 -o root -g root "$here/deploy/systemd/sendense.sysusers" "$R/usr/lib/sysusers.d/sendense.conf"
install -m 0644 -o root -g root "$here/deploy/systemd/sendense.tmpfiles" "$R/usr/lib/tmpfiles.d/sendense.conf"
# Paths given to these two are not prefixed with --root: pass the installed file.
systemd-sysusers --root="$dest" "$R/usr/lib/sysusers.d/sendense.conf"
systemd-tmpfiles --create --root="$dest" "$R/usr/lib/tmpfiles.d/sendense.conf"
ln -sfn "$PREFIX/bin/sendense-ctl" "$R/usr/local/bin/sendense-ctl"

env_file="$R/etc/sendense/sendense.env"
if [ -s "$env_file" ]; then
  log "keeping $env_file"
else
  secret() { head -c 48 /dev/urandom | base64 | tr -d '/+=\n'; }
  if [ -z "$db_url" ]; then
    pw="$(secret)"
    db_url="mysql://sendense:$pw@127.0.0.1:3306/sendense"
    if [ "$live" = 1 ] && command -v mariadb >/dev/null && mariadb -uroot -e 'SELECT 1' >/dev/null 2>&1; then
      log "creating the MariaDB user sendense@127.0.0.1 and database sendense"
      mariadb -uroot <<SQL
CREATE DATABASE IF NOT EXISTS sendense CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER IF NOT EXISTS 'sendense'@'127.0.0.1' IDENTIFIED BY '$pw';
ALTER USER 'sendense'@'127.0.0.1' IDENTIFIED BY '$pw';
GRANT ALL PRIVILEGES ON sendense.* TO 'sendense'@'127.0.0.1';
SQL
    elif [ "$live" = 1 ]; then
      log "warning: no local MariaDB reachable as root; set DATABASE_URL in /etc/sendense/sendense.env"
    fi
  fi
  if [ -z "$redis_url" ]; then
    redis_url='redis://127.0.0.1:6379'
    # The services log in to Redis as their own ACL user (Redis 6+), not as the
    # password-less default user; the admin guide says how to switch that one off.
    if [ "$live" = 1 ] && command -v redis-cli >/dev/null && [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ]; then
      rpw="$(secret)"
      if redis-cli -h 127.0.0.1 -p 6379 ACL SETUSER sendense reset on ">$rpw" '~*' '&*' '+@all' >/dev/null 2>&1; then
        redis_url="redis://sendense:$rpw@127.0.0.1:6379"
        log "created the Redis ACL user sendense"
        if [ "$(redis-cli -h 127.0.0.1 -p 6379 CONFIG REWRITE 2>&1)" != OK ]; then
          log "warning: Redis runs without a config file it can rewrite: the ACL user sendense is lost when Redis restarts (add it to redis.conf or an aclfile; docs/admin-guide.md)"
        fi
      else
        log "warning: could not create a Redis ACL user (Redis older than 6, or the default user needs a password): the services use $redis_url as it is"
      fi
    fi
  fi
  log "writing $env_file (generated SENDENSE_SECRET_KEY: keep it, stored vCenter passwords need it)"
  tmp="$(mktemp "$R/etc/sendense/.sendense.env.XXXXXX")"
  (cd "$here" && node_modules/.bin/tsx --tsconfig tsconfig.base.json scripts/env-file.ts \
    "DATABASE_URL=$db_url" "REDIS_URL=$redis_url" "NODE_NAME=$node_name" "SENDENSE_SECRET_KEY=$(secret)" "SENDENSE_INTERNAL_TOKEN=$(secret)") >"$tmp" \
    || { rm -f "$tmp"; die "could not write the environment file"; }
  chown root:root "$tmp" && chmod 0600 "$tmp" && mv "$tmp" "$env_file"
fi

if [ "$live" = 1 ]; then
  if [ "$migrate" = 1 ]; then
    log "bringing the database up to date (npm run db:migrate)"
    (set -a; . /etc/sendense/sendense.env; set +a; cd "$PREFIX" && npm run --silent db:migrate) \
      || die "the database migration failed (see above); fix DATABASE_URL in /etc/sendense/sendense.env and run this again"
  fi
  systemctl enable --quiet "${units[@]}"
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    if [ "$start" = 1 ]; then
      log "(re)starting sendense.target"
      systemctl restart sendense.target
      systemctl --no-pager --lines=0 status "${units[@]}" || true
    fi
  else
    log "systemd is not running on this host: units installed and enabled, nothing started"
  fi
else
  systemctl --root="$dest" enable --quiet "${units[@]}"
fi

log "installed into $dest"
cat >&2 <<EOF
Next:
  - first admin key:  sudo sh -c 'set -a; . /etc/sendense/sendense.env; sendense-ctl apikey create --role admin'
  - console and API:  http://127.0.0.1:8080/ on this host (log in with the key; to serve the
                      network set GATEWAY_HOST and GATEWAY_TLS_CERT/KEY: docs/admin-guide.md)
  - logs:             journalctl -u 'sendense-*' -f
EOF
