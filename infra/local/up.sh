#!/usr/bin/env bash
# Brings the local stack up: PostgreSQL, moto (S3 + SQS), the queue, its DLQ, the bucket,
# the migrations; writes .local/env. Idempotent: safe to run twice or after a crash.
LOG_TAG=stack
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

: "${EIS_BUCKET:=events}"
: "${EIS_QUEUE_NAME:=eis-events}"
: "${AWS_REGION:=us-east-1}"

# --- PostgreSQL: DATABASE_URL when set and reachable, else a private cluster in $PGDIR (outside
# the clone, see lib.sh; .local/pg links to it).
pg_reachable() { psql "$1" -Atqc 'select 1' >/dev/null 2>&1; }
# True when $1 points at the private cluster (a sourced .local/env exports it): not external.
is_private_url() { [ -f "$PGDIR/port" ] && [[ "$1" == *"@127.0.0.1:$(cat "$PGDIR/port")/"* ]]; }
# True when $1 points at another clone's private cluster (its .local/env sourced in this shell):
# not external either; this clone starts its own rather than share that one.
is_other_clone_url() {
  local f
  for f in "$PG_STATE_PARENT"/eis-pg-*/port; do
    [ -r "$f" ] && [ "$f" != "$PGDIR/port" ] && [[ "$1" == *"@127.0.0.1:$(cat "$f")/"* ]] && return 0
  done
  return 1
}

ensure_private_pg() {
  local bin port
  if ! bin=$(pg_bindir); then
    log "PostgreSQL binaries missing: installing the Debian postgresql package"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    bin=$(pg_bindir) || die "no initdb/pg_ctl after installing postgresql"
  fi
  command -v psql >/dev/null || die "psql not found"
  ensure_pgdir
  as_pg mkdir -p "$PGDIR/run"
  if [ ! -f "$PGDIR/data/PG_VERSION" ]; then
    log "initdb into $PGDIR/data"
    rm -rf "$PGDIR/data"
    as_pg "$bin/initdb" -D "$PGDIR/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$PGDIR/initdb.log"
    # A self-signed certificate so that TLS (sslmode=require / verify-full) can be tested locally.
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=localhost \
      -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
      -keyout "$PGDIR/data/server.key" -out "$PGDIR/data/server.crt" 2>/dev/null
    cp "$PGDIR/data/server.crt" "$PGDIR/ca.crt"
    chmod 600 "$PGDIR/data/server.key"
    [ "$(id -u)" = 0 ] && chown postgres: "$PGDIR/data/server.key" "$PGDIR/data/server.crt"
  fi
  if as_pg "$bin/pg_ctl" -D "$PGDIR/data" status >/dev/null 2>&1; then
    port=$(cat "$PGDIR/port")
  else
    port=${EIS_PG_PORT:-$(free_port)}
    log "starting PostgreSQL on 127.0.0.1:$port"
    as_pg "$bin/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/server.log" -w -t 60 start \
      -o "-p $port -k '$PGDIR/run' -c listen_addresses=127.0.0.1 -c ssl=on -c max_connections=200 -c fsync=off" >/dev/null \
      || { tail -20 "$PGDIR/server.log" >&2; die "PostgreSQL did not start"; }
    echo "$port" >"$PGDIR/port"
  fi
  local admin="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
  psql "$admin" -Atqc "select 1 from pg_database where datname='eis'" | grep -q 1 \
    || psql "$admin" -qc 'create database eis' >/dev/null
  DATABASE_URL="postgres://postgres@127.0.0.1:$port/eis?sslmode=disable"
  EIS_PG_CA_FILE="$PGDIR/ca.crt"
}

# --- moto for S3 and SQS on 127.0.0.1.
ensure_moto() {
  local port
  if pid_alive "$LOCAL/moto.pid" moto_server; then
    port=$(cat "$LOCAL/moto.port")
  else
    port=${EIS_MOTO_PORT:-$(free_port)}
    log "starting moto on 127.0.0.1:$port"
    nohup "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$LOCAL/moto.log" 2>&1 &
    echo $! >"$LOCAL/moto.pid"
    echo "$port" >"$LOCAL/moto.port"
  fi
  AWS_ENDPOINT_URL="http://127.0.0.1:$port"
  for _ in $(seq 1 100); do
    curl -fs "$AWS_ENDPOINT_URL/moto-api/" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  tail -20 "$LOCAL/moto.log" >&2
  die "moto did not answer on $AWS_ENDPOINT_URL"
}

ensure_local_venv
if [ -n "${DATABASE_URL:-}" ] && ! is_private_url "$DATABASE_URL" \
  && ! is_other_clone_url "$DATABASE_URL" && pg_reachable "$DATABASE_URL"; then
  log "using DATABASE_URL from the environment"
  EIS_PG_CA_FILE=${EIS_PG_CA_FILE:-}
  rm -f "$PGDIR/port"
else
  ensure_private_pg
fi
ensure_moto

export AWS_ENDPOINT_URL AWS_REGION AWS_DEFAULT_REGION="$AWS_REGION" AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
# Queue, dead-letter queue and bucket; prints the two queue URLs.
read -r EIS_QUEUE_URL EIS_DLQ_URL < <("$VENV/bin/python" "$ROOT/infra/local/resources.py" \
  --queue "$EIS_QUEUE_NAME" --bucket "$EIS_BUCKET")

cat >"$ENV_FILE.tmp" <<ENV
# Written by infra/local/up.sh; source it: . .local/env
export DATABASE_URL='$DATABASE_URL'
export EIS_PG_CA_FILE='$EIS_PG_CA_FILE'
export AWS_ENDPOINT_URL='$AWS_ENDPOINT_URL'
export AWS_REGION='$AWS_REGION'
export AWS_DEFAULT_REGION='$AWS_REGION'
export AWS_ACCESS_KEY_ID='testing'
export AWS_SECRET_ACCESS_KEY='testing'
export EIS_QUEUE_URL='$EIS_QUEUE_URL'
export EIS_DLQ_URL='$EIS_DLQ_URL'
export EIS_BUCKET='$EIS_BUCKET'
ENV
mv "$ENV_FILE.tmp" "$ENV_FILE"

log "applying migrations"
(cd "$ROOT" && source "$ENV_FILE" && cargo run --quiet --locked --bin migrator >&2)
log "stack is up; environment in .local/env"
