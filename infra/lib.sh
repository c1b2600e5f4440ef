# Shared by the scripts of infra/local (the stack), infra/tools (template checks, builds) and
# bench/: paths, logging, the Python tool virtualenvs and the stack's helpers. Sourced, not
# run. A script may set LOG_TAG (its log prefix) before sourcing.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
LOCAL="$ROOT/.local"
VENV="$LOCAL/venv"
ENV_FILE="$LOCAL/env"
mkdir -p "$LOCAL"
# EIS_TOOLS_DIR may move the tool venvs out of the clone (e.g. to survive between CI clones).
TOOLS_DIR="${EIS_TOOLS_DIR:-$LOCAL/tools}"
mkdir -p "$TOOLS_DIR"

# The private PostgreSQL cluster lives outside the clone: as root it runs as `postgres`, which
# cannot enter a clone under a 0700 directory (root's home, a `mktemp -d`). One directory per
# clone, named after a hash of the clone's absolute path, so that two clones never share a
# cluster and `make down` finds exactly the one `make up` started. /var/tmp is world-traversable
# and survives reboots; EIS_PG_STATE_DIR moves the parent elsewhere.
PG_STATE_PARENT=${EIS_PG_STATE_DIR:-/var/tmp}
PGDIR="$PG_STATE_PARENT/eis-pg-$(id -u)-$(printf '%s' "$ROOT" | sha256sum | cut -c1-16)"

log() { printf '[%s] %s\n' "${LOG_TAG:-eis}" "$*" >&2; }
die() { printf '[%s] error: %s\n' "${LOG_TAG:-eis}" "$*" >&2; exit 1; }

# --- Python tool virtualenvs (infra/tools) ---------------------------------------------------

# ensure_venv NAME: a virtualenv at .local/tools/NAME holding infra/tools/requirements-NAME.txt,
# (re)created only when that file differs from the copy stamped into the venv at install time.
# Prints the venv's path.
ensure_venv() {
  local name=$1
  local req="$ROOT/infra/tools/requirements-$name.txt" venv="$TOOLS_DIR/$name"
  local stamp="$venv/.requirements"
  [ -f "$req" ] || die "missing $req"
  # Two clones (or worktrees) sharing EIS_TOOLS_DIR must not install into one venv at once:
  # one would delete the other's half-made venv and leave a stamped, broken one. The lock is
  # released when this function's caller, a $(...) subshell, exits.
  exec {lock}>"$TOOLS_DIR/.$name.lock"
  flock "$lock"
  if [ -x "$venv/bin/python" ] && cmp -s "$req" "$stamp"; then
    printf '%s\n' "$venv"
    return 0
  fi
  command -v python3 >/dev/null || die "python3 not found"
  log "installing $name tools into $venv (requirements changed or venv missing)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2 \
    || { rm -rf "$venv"; die "pip install -r $req failed"; }
  cp "$req" "$stamp"
  printf '%s\n' "$venv"
}

# Offline-friendly settings for SAM CLI: no telemetry, a region for the translator (it
# refuses to run without one). No credentials are needed for validation or build.
sam_env() {
  export SAM_CLI_TELEMETRY=0
  export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
  export AWS_REGION="${AWS_REGION:-$AWS_DEFAULT_REGION}"
}

# --- The local stack (infra/local, bench) -----------------------------------------------------

# The local stack's Python tools (moto, pytest, boto3, pyarrow, ...) in .local/venv,
# reinstalled only when infra/local/requirements.txt changes. up.sh needs it, and so does
# `make smoke` against a deployed stack, which starts no local stack.
ensure_local_venv() {
  local req="$ROOT/infra/local/requirements.txt" stamp="$VENV/.requirements"
  if [ -x "$VENV/bin/python" ] && cmp -s "$req" "$stamp"; then return 0; fi
  log "installing Python tools into $VENV"
  python3 -m venv "$VENV"
  # From the clone's root: the requirements name the SDK by a path relative to it.
  (cd "$ROOT" && "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$req")
  cp "$req" "$stamp"
}

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
  # From /: the postgres user may not be allowed into the clone's directory (a 0700 home);
  # every path handed to it is absolute.
  if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# The user the private cluster runs as (who owns $PGDIR).
pg_owner() { if [ "$(id -u)" = 0 ]; then echo postgres; else id -un; fi; }

# Creates $PGDIR (0700, owned by the cluster's user) or checks that an existing one is a real
# directory of that user: the parent is shared, so a planted symlink or foreign directory is
# refused rather than used.
ensure_pgdir() {
  local owner
  retire_old_pgdir
  owner=$(pg_owner)
  if [ -L "$PGDIR" ] || { [ -e "$PGDIR" ] && [ ! -d "$PGDIR" ]; }; then
    die "$PGDIR exists and is not a directory: remove it"
  fi
  if [ ! -d "$PGDIR" ]; then
    mkdir -m 0700 "$PGDIR"
    [ "$(id -u)" = 0 ] && chown "$owner": "$PGDIR"
  fi
  [ "$(stat -c %U "$PGDIR")" = "$owner" ] || die "$PGDIR is not owned by $owner: remove it"
  # For people: which clone this cluster belongs to; .local/pg is a shortcut to it.
  printf '%s\n' "$ROOT" >"$PGDIR/clone"
  ln -sfn "$PGDIR" "$LOCAL/pg"
}

# Clones from before the cluster moved out kept it in .local/pg itself: stop that cluster if it
# runs and set its directory aside (.local/pg.old), so that .local/pg can become the link.
retire_old_pgdir() {
  local old="$LOCAL/pg" bin
  [ -d "$old" ] && [ ! -L "$old" ] || return 0
  if [ -f "$old/data/PG_VERSION" ] && bin=$(pg_bindir) \
    && as_pg "$bin/pg_ctl" -D "$old/data" status >/dev/null 2>&1; then
    log "stopping the cluster of the old layout in $old"
    as_pg "$bin/pg_ctl" -D "$old/data" -m fast -w stop >/dev/null
  fi
  rm -rf "$LOCAL/pg.old"
  mv "$old" "$LOCAL/pg.old"
  log "moved the old cluster directory to $LOCAL/pg.old (the cluster now lives in $PGDIR)"
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

# bench_scratch DB_NAME: a benchmark's own resources on the running stack: NAME (its queue and
# bucket), DB_NAME at BENCH_DB_URL, WORK (a temporary folder); remove_bench_scratch removes
# them all (call it from the script's EXIT trap).
bench_scratch() {
  NAME="eis-bench-$(date +%s)-$$"
  DB_NAME=$1
  ADMIN_DB_URL=$DATABASE_URL
  BENCH_DB_URL=$(db_url_named "$DB_NAME")
  WORK=${WORK:-$(mktemp -d)}
}
remove_bench_scratch() {
  remove_scratch "$ADMIN_DB_URL" "$DB_NAME" "$NAME"
  rm -rf "$WORK"
}
