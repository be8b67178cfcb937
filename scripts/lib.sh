# Shared by the scripts: paths, logging, and the database/Redis settings.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="$ROOT/.sendense"
log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
# Credentials setup.sh made (the services' MariaDB and Redis users), mode 0600.
if [ -f "$STATE/env" ]; then set -a; . "$STATE/env"; set +a; fi
DEFAULT_DATABASE_URL='mysql://root@127.0.0.1:3306/sendense'
DEFAULT_REDIS_URL='redis://127.0.0.1:6379'
export DATABASE_URL="${DATABASE_URL:-$DEFAULT_DATABASE_URL}"
export TEST_DATABASE_URL="${TEST_DATABASE_URL:-${DATABASE_URL%/*}/sendense_test}"
export REDIS_URL="${REDIS_URL:-$DEFAULT_REDIS_URL}"
# The specs that talk to Redis themselves use the services' Redis user too.
export TEST_REDIS_URL="${TEST_REDIS_URL:-$REDIS_URL}"
