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
# The services log in to MariaDB as their own user with a generated password,
# never as root. The test suites keep using root where root can log in over
# TCP (they create and drop a database per suite); where it cannot (Debian's
# root logs in through the Unix socket only) they use the services' user,
# which then needs rights on every database. A DATABASE_URL given by the
# operator (environment or env file) is used as it is.
root_tcp=0
mariadb -h127.0.0.1 -uroot -e 'SELECT 1' >/dev/null 2>&1 && root_tcp=1
if ! grep -q '^DATABASE_URL=' "$STATE/env" 2>/dev/null && [ "$DATABASE_URL" = "$DEFAULT_DATABASE_URL" ]; then
  mariadb -uroot -e 'SELECT 1' >/dev/null 2>&1 \
    || die "cannot log in to MariaDB as root (socket) to create the services' user: create one and put DATABASE_URL=mysql://USER:PASSWORD@127.0.0.1:3306/sendense into $STATE/env"
  # MariaDB keeps one password per user, and another checkout or an install
  # on this host may use 'sendense' already: never change its password.
  dbuser=sendense
  if [ "$(mariadb -uroot -N -e "SELECT COUNT(*) FROM mysql.user WHERE user='sendense' AND host='127.0.0.1'")" != 0 ]; then
    dbuser="sendense_$(printf '%s' "$ROOT" | sha256sum | cut -c1-8)"
  fi
  if [ "$root_tcp" = 1 ]; then grant_on='`sendense`.*'; else grant_on='*.*'; fi
  log "creating the MariaDB user $dbuser@127.0.0.1 for the services (rights on $grant_on)"
  mkdir -p "$STATE" && chmod 700 "$STATE"
  pw=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  # Through stdin: the password is never on a command line.
  mariadb -uroot <<SQL
CREATE USER IF NOT EXISTS '$dbuser'@'127.0.0.1' IDENTIFIED BY '$pw';
ALTER USER '$dbuser'@'127.0.0.1' IDENTIFIED BY '$pw';
GRANT ALL PRIVILEGES ON $grant_on TO '$dbuser'@'127.0.0.1';
SQL
  if [ "$root_tcp" = 1 ]; then test_url="${DEFAULT_DATABASE_URL%/*}/sendense_test"; else test_url="mysql://$dbuser:$pw@127.0.0.1:3306/sendense_test"; fi
  (umask 077; printf 'DATABASE_URL=mysql://%s:%s@127.0.0.1:3306/sendense\nTEST_DATABASE_URL=%s\n' "$dbuser" "$pw" "$test_url" >> "$STATE/env")
  chmod 600 "$STATE/env"
  unset pw
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

# Redis: the services log in as an ACL user of their own with a generated
# password (REDIS_URL=redis://sendense:...@127.0.0.1:6379). A Redis that
# setup starts itself has its password-less default user off. A Redis that
# runs already may serve other programs: setup only adds a user (`sendense`,
# or `sendense_<checkout hash>` when another checkout or an install has that
# one) and leaves the default user as it is, with a warning. Such a Redis
# forgets the user when it restarts (setup does not rewrite another program's
# config): setup, which npm test and npm run demo run, adds it again.
redis_cli() { redis-cli -h 127.0.0.1 -p 6379 "$@" 2>&1; }
redis_url_part() { [[ "$REDIS_URL" =~ ^redis://(([A-Za-z0-9_]+):([A-Za-z0-9]+)@)?127\.0\.0\.1:6379/?$ ]] && printf '%s' "${BASH_REMATCH[$1]}"; }
# As the user in REDIS_URL, its password through the environment (never on a command line).
redis_ours() { REDISCLI_AUTH="$(redis_url_part 3)" redis-cli --no-auth-warning --user "$(redis_url_part 2)" -h 127.0.0.1 -p 6379 "$@" 2>&1; }
# ACL SETUSER <user> reset on ><password> ~* &* +@all, on stdin: `ps` never shows the password.
redis_set_user() { printf 'ACL SETUSER %s reset on >%s ~* &* +@all\n' "$1" "$2" | redis_cli; }
redis_default_open_warning() {
  if [ "$(redis_cli ACL WHOAMI)" = default ]; then
    log "warning: Redis on 127.0.0.1:6379 still lets its password-less default user in (other programs on this host may use it, so setup leaves it on). On a Redis that serves only Sendense close it: redis-cli ACL SETUSER default off && redis-cli CONFIG REWRITE (docs/admin-guide.md)"
  fi
}
if ! grep -q '^REDIS_URL=' "$STATE/env" 2>/dev/null && [ "$REDIS_URL" = "$DEFAULT_REDIS_URL" ]; then
  mkdir -p "$STATE" && chmod 700 "$STATE"
  rpw=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  ruser=sendense
  state=$(redis_cli ping || true)
  case "$state" in
    PONG)
      if [ -n "$(redis_cli ACL GETUSER sendense)" ]; then ruser="sendense_$(printf '%s' "$ROOT" | sha256sum | cut -c1-8)"; fi
      [ "$(redis_set_user "$ruser" "$rpw")" = OK ] || die "Redis on 127.0.0.1:6379 refused ACL SETUSER (Redis 6 or newer is needed for the services' own user)"
      log "created the Redis ACL user $ruser for the services (the Redis on 127.0.0.1:6379 ran already)"
      redis_default_open_warning
      ;;
    *NOAUTH* | *WRONGPASS* | *NOPERM*)
      die "Redis on 127.0.0.1:6379 needs a password: put REDIS_URL=redis://USER:PASSWORD@127.0.0.1:6379 (a user with ~* &* +@all) and TEST_REDIS_URL (the same) into $STATE/env"
      ;;
    *)
      log "starting Redis (only the ACL user sendense may log in; its config with the password: $STATE/redis.conf, 0600)"
      SENDENSE_REDIS_PASSWORD="$rpw" bash "$ROOT/scripts/redis-start.sh" "$STATE/redis.conf" /var/lib/redis /var/log/redis/sendense.log 6379
      ;;
  esac
  (umask 077; printf 'REDIS_URL=redis://%s:%s@127.0.0.1:6379\nTEST_REDIS_URL=redis://%s:%s@127.0.0.1:6379\n' "$ruser" "$rpw" "$ruser" "$rpw" >> "$STATE/env")
  chmod 600 "$STATE/env"
  unset rpw
  set -a; . "$STATE/env"; set +a
fi
if [ -n "$(redis_url_part 2)" ]; then
  if [ "$(redis_ours ping)" != PONG ]; then
    state=$(redis_cli ping || true)
    case "$state" in
      PONG)
        # A Redis that restarted and forgot the user: add it again (it is this checkout's).
        [ "$(redis_set_user "$(redis_url_part 2)" "$(redis_url_part 3)")" = OK ] || die "Redis on 127.0.0.1:6379 refused ACL SETUSER for the user in REDIS_URL ($STATE/env)"
        log "added the Redis ACL user $(redis_url_part 2) again (this Redis had forgotten it)"
        redis_default_open_warning
        ;;
      *NOAUTH* | *WRONGPASS* | *NOPERM*)
        die "Redis on 127.0.0.1:6379 refuses the user in REDIS_URL ($STATE/env): $(redis_ours ping | head -1). Add it (ACL SETUSER USER on >PASSWORD ~* &* +@all, as an admin of that Redis) or correct REDIS_URL and TEST_REDIS_URL"
        ;;
      *)
        [ -f "$STATE/redis.conf" ] || die "no Redis answers on 127.0.0.1:6379: start it (the services' user is in REDIS_URL, $STATE/env)"
        log "starting Redis from $STATE/redis.conf (a host restart stopped the one setup started)"
        redis-server "$STATE/redis.conf"
        ;;
    esac
    for _ in $(seq 1 40); do [ "$(redis_ours ping)" = PONG ] && break; sleep 0.25; done
  fi
  [ "$(redis_ours ping)" = PONG ] || die "Redis does not let the user in REDIS_URL ($STATE/env) in: $(redis_ours ping | head -1) (see /var/log/redis/sendense.log)"
elif [[ "$REDIS_URL" != *@* ]]; then
  # An operator's REDIS_URL without a password (another host or port): used as it is, never started here.
  redis-cli -u "$REDIS_URL" ping >/dev/null 2>&1 || die "Redis at $REDIS_URL does not answer: start it or correct REDIS_URL"
else
  log "REDIS_URL names another Redis with a password: not checked here (the gateway's /api/v1/health shows it)"
fi

if [ "$migrate" = 1 ]; then
  log "migrating $(echo "$DATABASE_URL" | sed -E 's#//[^@]*@#//***@#')"
  npm run --silent db:migrate
fi
log "setup done"
