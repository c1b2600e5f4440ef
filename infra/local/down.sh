#!/usr/bin/env bash
# Stops what infra/local/up.sh started, and nothing else.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if pid_alive "$LOCAL/moto.pid" moto_server; then
  log "stopping moto"
  kill "$(cat "$LOCAL/moto.pid")" 2>/dev/null || true
fi
rm -f "$LOCAL/moto.pid" "$LOCAL/moto.port"

if [ -f "$PGDIR/data/PG_VERSION" ] && bin=$(pg_bindir) \
  && as_pg "$bin/pg_ctl" -D "$PGDIR/data" status >/dev/null 2>&1; then
  log "stopping the project's PostgreSQL"
  as_pg "$bin/pg_ctl" -D "$PGDIR/data" -m fast -w stop >/dev/null
fi
rm -f "$PGDIR/port" "$ENV_FILE"
