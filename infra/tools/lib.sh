# Shared by the infra/tools scripts: paths, logging and the Python tool virtualenvs. Sourced.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# EIS_TOOLS_DIR may move them out of the clone (e.g. to survive between CI clones).
TOOLS_DIR="${EIS_TOOLS_DIR:-$ROOT/.local/tools}"
mkdir -p "$TOOLS_DIR"

log() { printf '[tools] %s\n' "$*" >&2; }
die() { printf '[tools] error: %s\n' "$*" >&2; exit 1; }

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
