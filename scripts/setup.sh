#!/usr/bin/env bash
# Installs and starts everything Sendense needs on a Debian 12 host (as root).
# Safe to run again: it only does what is missing.
#   --no-migrate   skip migrating DATABASE_URL (tests use their own databases)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
migrate=1
for a in "$@"; do case "$a" in --no-migrate) migrate=0 ;; *) die "unknown option $a" ;; esac; done

[ "$(id -u)" = 0 ] || die "run as root: mounting restore points, loop devices and NBD servers need it"

APT_PACKAGES=(
  qemu-utils qemu-system-common nbd-server libnbd-bin nbdkit
  fdisk gdisk util-linux e2fsprogs xfsprogs dosfstools ntfs-3g fuse3 fusefat mtools kmod
  golang-go golang-github-vmware-govmomi-dev
  mariadb-server mariadb-client redis-server procps ca-certificates systemd rsync
  chromium
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v node >/dev/null || die "Node.js 20 or newer is needed (https://nodejs.org or NodeSource's Debian packages)"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || die "Node.js $node_major is too old: Node.js 20 or newer is needed"

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "installing npm packages (npm ci)"
  # The lock file carries every platform's optional packages (sass-embedded is
  # pinned in package.json "overrides" to a version the registry has for all).
  npm ci --no-audit --no-fund --loglevel=error 2>/tmp/sendense-npm-ci.log || { cat /tmp/sendense-npm-ci.log >&2; die "npm ci failed (see above)"; }
else
  npm run --silent db:generate >/dev/null
fi

# FUSE for file-level restore (qemu-storage-daemon exports a chain as a file).
[ -e /dev/fuse ] || modprobe fuse 2>/dev/null || true

# MariaDB
if ! mariadb-admin ping --silent >/dev/null 2>&1; then
  log "starting MariaDB"
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
  for _ in $(seq 1 60); do mariadb-admin ping --silent >/dev/null 2>&1 && break; sleep 0.5; done
  mariadb-admin ping --silent >/dev/null 2>&1 || die "MariaDB did not start (see /var/log/mysql/ or journalctl)"
fi
# Debian's root logs in through the Unix socket only; the services connect
# over TCP, so such hosts get a dedicated user with a generated password.
if ! mariadb -h127.0.0.1 -uroot -e 'SELECT 1' >/dev/null 2>&1 && ! grep -q '^DATABASE_URL=' "$STATE/env" 2>/dev/null; then
  log "creating MariaDB user sendense (root cannot log in over TCP here)"
  mkdir -p "$STATE" && chmod 700 "$STATE"
  pw=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  mariadb -uroot <<SQL
CREATE USER IF NOT EXISTS 'sendense'@'127.0.0.1' IDENTIFIED BY '$pw';
ALTER USER 'sendense'@'127.0.0.1' IDENTIFIED BY '$pw';
GRANT ALL PRIVILEGES ON *.* TO 'sendense'@'127.0.0.1';
SQL
  printf 'DATABASE_URL=mysql://sendense:%s@127.0.0.1:3306/sendense\nTEST_DATABASE_URL=mysql://sendense:%s@127.0.0.1:3306/sendense_test\n' "$pw" "$pw" >> "$STATE/env"
  chmod 600 "$STATE/env"
  set -a; . "$STATE/env"; set +a
fi

# The key that encrypts stored vCenter passwords, made once per host.
if [ -z "${SENDENSE_SECRET_KEY:-}" ] && ! grep -q '^SENDENSE_SECRET_KEY=' "$STATE/env" 2>/dev/null; then
  mkdir -p "$STATE" && chmod 700 "$STATE"
  (umask 077; echo "SENDENSE_SECRET_KEY=$(head -c 32 /dev/urandom | base64 | tr -d '/+=')" >> "$STATE/env")
  log "made SENDENSE_SECRET_KEY in $STATE/env (keep it: stored vCenter passwords need it)"
fi
# The secret every internal call carries (nbd-exporter, restore-service, Capture Agent refuse calls without it).
if [ -z "${SENDENSE_INTERNAL_TOKEN:-}" ] && ! grep -q '^SENDENSE_INTERNAL_TOKEN=' "$STATE/env" 2>/dev/null; then
  mkdir -p "$STATE" && chmod 700 "$STATE"
  (umask 077; echo "SENDENSE_INTERNAL_TOKEN=$(head -c 32 /dev/urandom | base64 | tr -d '/+=')" >> "$STATE/env")
  log "made SENDENSE_INTERNAL_TOKEN in $STATE/env (every service needs the same value)"
fi
set -a; [ -f "$STATE/env" ] && . "$STATE/env"; set +a

# Redis
if ! redis-cli -u "$REDIS_URL" ping >/dev/null 2>&1; then
  log "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/sendense.log
  for _ in $(seq 1 40); do redis-cli -u "$REDIS_URL" ping >/dev/null 2>&1 && break; sleep 0.25; done
  redis-cli -u "$REDIS_URL" ping >/dev/null 2>&1 || die "Redis did not start (see /var/log/redis/sendense.log)"
fi

if [ "$migrate" = 1 ]; then
  log "migrating $(echo "$DATABASE_URL" | sed -E 's#//[^@]*@#//***@#')"
  npm run --silent db:migrate
fi
log "setup done"
