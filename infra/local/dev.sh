#!/usr/bin/env bash
# `make dev`: the local stack, the migrations, the ingest API on 127.0.0.1:$EIS_PORT and the
# archiver every $EIS_ARCHIVE_EVERY seconds (the local stand-in for the EventBridge schedules:
# an archive run, then a health run).
# Ctrl-C stops everything this script started, and nothing else.
LOG_TAG=stack
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cd "$ROOT"

PORT=${EIS_PORT:-3000}
EVERY=${EIS_ARCHIVE_EVERY:-60}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
pids=()
started_stack=0

cleanup() {
  trap - EXIT INT TERM
  log "stopping"
  for pid in "${pids[@]}"; do pkill -P "$pid" 2>/dev/null || true; kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -f "$ENV_FILE" ]; then
    grep -v '^export EIS_API_URL=' "$ENV_FILE" >"$ENV_FILE.tmp" || true
    mv "$ENV_FILE.tmp" "$ENV_FILE"
  fi
  [ "$started_stack" = 1 ] && "$ROOT/infra/local/down.sh"
  exit 0
}
trap cleanup EXIT INT TERM

if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  die "port $PORT is in use: set EIS_PORT to another port"
fi
stack_running || started_stack=1
"$ROOT/infra/local/up.sh"
# The same package selection as `cargo lambda watch` (cargo run --bin): one build serves both.
cargo build --quiet --locked --bins
# shellcheck disable=SC1090
source "$ENV_FILE"

# A local request is bounded by the database timeouts, far below the health job's default
# lag (sized for the Lambda timeout): counted sooner, the same guarantee.
export EIS_HEALTH_LAG_SECS=${EIS_HEALTH_LAG_SECS:-30}
EIS_PORT=$PORT "$TARGET/debug/ingest" &
pids+=($!)
url="http://127.0.0.1:$PORT"
for _ in $(seq 1 100); do
  curl -fs "$url/health" >/dev/null 2>&1 && break
  kill -0 "${pids[0]}" 2>/dev/null || die "the ingest API exited; see its log above"
  sleep 0.1
done
curl -fs "$url/health" >/dev/null || die "the ingest API did not become healthy on $url"
grep -v '^export EIS_API_URL=' "$ENV_FILE" >"$ENV_FILE.tmp" || true
echo "export EIS_API_URL='$url'" >>"$ENV_FILE.tmp"
mv "$ENV_FILE.tmp" "$ENV_FILE"

(
  while sleep "$EVERY"; do
    "$TARGET/debug/archiver" "$ROOT/events/archiver-scheduled.json" || log "archiver run failed"
    "$TARGET/debug/archiver" "$ROOT/events/archiver-health.json" || log "health run failed"
  done
) &
pids+=($!)

echo "ready: $url"
wait "${pids[0]}"
