# Shared by the scripts: paths, logging, and the database/Redis settings.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="$ROOT/.sendense"
log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
# Credentials made by setup.sh on hosts where root cannot log in over TCP.
if [ -f "$STATE/env" ]; then set -a; . "$STATE/env"; set +a; fi
export DATABASE_URL="${DATABASE_URL:-mysql://root@127.0.0.1:3306/sendense}"
export TEST_DATABASE_URL="${TEST_DATABASE_URL:-${DATABASE_URL%/*}/sendense_test}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
