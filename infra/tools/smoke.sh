#!/usr/bin/env bash
# `make smoke URL=… [AUTH=none|iam|jwt] …` (docs/smoke.md): infra/tools/smoke.py with the
# project's Python tools (.local/venv, created if missing; no local stack is started).
# A local URL (127.0.0.1, localhost) is checked against the local stack, so its environment
# (.local/env: moto's endpoint, the bucket) is read; a deployed one uses the caller's.
LOG_TAG=smoke
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

url=${1:?usage: smoke.sh URL [smoke.py options]}
shift
ensure_local_venv
host=$("$VENV/bin/python" -c 'import sys, urllib.parse as u; print(u.urlsplit(sys.argv[1]).hostname or "")' "$url")
case "$host" in
  127.0.0.1 | localhost | ::1)
    [ -f "$ENV_FILE" ] || die "$ENV_FILE is missing: start the local stack first (make dev)"
    # shellcheck disable=SC1090
    source "$ENV_FILE"
    ;;
esac
exec "$VENV/bin/python" "$ROOT/infra/tools/smoke.py" --url "$url" "$@"
