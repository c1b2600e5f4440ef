#!/usr/bin/env bash
# Stops what infra/local/up.sh started, and nothing else. The cluster's data stays in $PGDIR
# for the next `make up`; `down.sh --purge` removes it as well (before deleting a clone).
LOG_TAG=stack
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
purge=0
[ "${1:-}" = --purge ] && purge=1
retire_old_pgdir

if pid_alive "$LOCAL/moto.pid" moto_server; then
  log "stopping moto"
  pid=$(cat "$LOCAL/moto.pid")
  kill "$pid" 2>/dev/null || true
  # Return only once it is gone (a port or a later `make up` must not find it still there).
  for _ in $(seq 1 50); do pid_alive "$LOCAL/moto.pid" moto_server || break; sleep 0.1; done
  if pid_alive "$LOCAL/moto.pid" moto_server; then
    # Busy machines (two cores compiling) were seen to need longer: force it, and wait again,
    # since a killed process is still there until the kernel has torn it down.
    kill -9 "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do pid_alive "$LOCAL/moto.pid" moto_server || break; sleep 0.1; done
  fi
fi
rm -f "$LOCAL/moto.pid" "$LOCAL/moto.port"

if [ -f "$PGDIR/data/PG_VERSION" ] && bin=$(pg_bindir) \
  && as_pg "$bin/pg_ctl" -D "$PGDIR/data" status >/dev/null 2>&1; then
  log "stopping the project's PostgreSQL"
  as_pg "$bin/pg_ctl" -D "$PGDIR/data" -m fast -w stop >/dev/null
fi
rm -f "$PGDIR/port" "$ENV_FILE"
if [ "$purge" = 1 ]; then
  log "removing the cluster's data ($PGDIR)"
  rm -rf "$PGDIR" "$LOCAL/pg"
fi
