# Shared by the infra/local scripts: paths and small helpers. Sourced, not run.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LOCAL="$ROOT/.local"
VENV="$LOCAL/venv"
PGDIR="$LOCAL/pg"
ENV_FILE="$LOCAL/env"
mkdir -p "$LOCAL"

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] error: %s\n' "$*" >&2; exit 1; }

# A TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# True when the pid in file $1 is alive and its command line contains $2.
pid_alive() {
  local file=$1 pattern=$2 pid
  [ -f "$file" ] || return 1
  pid=$(cat "$file")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$pattern"
}

# Run a command as the postgres user when we are root (PostgreSQL refuses to run as root).
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_bindir() {
  local d
  for d in "$(pg_config --bindir 2>/dev/null || true)" /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
  done
  return 1
}

# True when the stack this project starts is running (moto and, unless external, PostgreSQL).
stack_running() {
  pid_alive "$LOCAL/moto.pid" moto_server || return 1
  if [ -f "$PGDIR/port" ]; then
    local bin
    bin=$(pg_bindir) && as_pg "$bin/pg_ctl" -D "$PGDIR/data" status >/dev/null 2>&1
  fi
}

# $DATABASE_URL with its database name replaced by $1 (scratch databases of the benchmarks).
db_url_named() {
  "$VENV/bin/python" -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$DATABASE_URL" "$1"
}

# Drops the scratch database $2 (connecting through URL $1) and removes the queue, its
# dead-letter queue and the bucket named $3.
remove_scratch() {
  psql "$1" -qc "DROP DATABASE IF EXISTS $2 WITH (FORCE)" >/dev/null 2>&1
  "$VENV/bin/python" "$ROOT/infra/local/resources.py" --remove --queue "$3" --bucket "$3" >/dev/null 2>&1
}
