#!/usr/bin/env bash
# Benchmark: peak memory (RSS) and throughput of ONE archiver run draining N events
# (default 100 000) from a queue of its own on the local stack, measured with /usr/bin/time -v.
# Not part of `make test` (minutes, and a release build); `make bench` runs it (bench/run.sh, §5):
#
#   bench/memory-drain.sh [N]
#
# Uses a database, queue and bucket of its own (removed at the end), so the local stack's
# queue, bucket and database are left alone. Extra EIS_* variables (e.g. EIS_MAX_FILE_EVENTS)
# are passed to the archiver. Prints one JSON line: events, files, peak_rss_mib, events_per_s,
# cpu_seconds (the archiver's user + system time: how much of the wall time it was busy).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# lib.sh: db_url_named, remove_scratch (shared with bench/run.sh).
# shellcheck source=../infra/lib.sh
LOG_TAG=memory-drain
source infra/lib.sh
N=${1:-100000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/eis/target}
log() { printf '[memory-drain] %s\n' "$*" >&2; }

if [ ! -x /usr/bin/time ]; then
  log "installing GNU time"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
fi
PY=.local/venv/bin/python
# The running local stack when there is one (up.sh otherwise).
stack_answers() {
  [ -f .local/env ] && (
    # shellcheck disable=SC1091
    source .local/env && psql "$DATABASE_URL" -Atqc 'select 1' >/dev/null 2>&1 &&
      curl -fs "$AWS_ENDPOINT_URL/moto-api/" >/dev/null 2>&1
  )
}
stack_answers || infra/local/up.sh
# shellcheck disable=SC1091
source .local/env
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-$AWS_REGION}  # boto3 reads this one

log "building (release archiver, debug load generator)"
cargo build --quiet --release --locked -p archiver --bin archiver
cargo build --quiet --locked -p eis-bench
ARCHIVER="$CARGO_TARGET_DIR/release/archiver"

bench_scratch "eis_bench_$(date +%s)_$$"
trap 'set +e; remove_bench_scratch' EXIT

psql "$ADMIN_DB_URL" -qc "CREATE DATABASE $DB_NAME" >/dev/null
read -r QUEUE_URL _ < <($PY infra/local/resources.py --queue "$NAME" --bucket "$NAME")
export DATABASE_URL=$BENCH_DB_URL EIS_QUEUE_URL=$QUEUE_URL EIS_BUCKET=$NAME
# Room for the whole drain: the local deadline stands in for Lambda's.
export EIS_LOCAL_DEADLINE_SECS=${EIS_LOCAL_DEADLINE_SECS:-900}
cargo run --quiet --locked --bin migrator >/dev/null

log "queueing $N events"
"$CARGO_TARGET_DIR/debug/eis-bench" fill-queue "$QUEUE_URL" "$N" >&2

log "draining with $ARCHIVER"
/usr/bin/time -v -o "$WORK/time.txt" "$ARCHIVER" events/archiver-scheduled.json >"$WORK/summary.json" 2>"$WORK/archiver.log" \
  || { tail -20 "$WORK/archiver.log" >&2; exit 1; }

$PY - "$WORK/summary.json" "$WORK/time.txt" "$N" <<'PY'
import json, re, sys
summary = json.load(open(sys.argv[1]))
time_report = open(sys.argv[2]).read()
rss_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", time_report).group(1))
wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", time_report).group(1)
cpu = sum(float(re.search(rf"{kind} time \(seconds\): ([\d.]+)", time_report).group(1))
          for kind in ("User", "System"))
expected = int(sys.argv[3])
assert summary["events"] == expected, f"archived {summary['events']} of {expected}"
print(json.dumps({
    "events": summary["events"],
    "messages": summary["messages"],
    "files": summary["files"],
    "bytes": summary["bytes"],
    "run_seconds": round(summary["seconds"], 2),
    "wall": wall,
    "cpu_seconds": round(cpu, 2),
    "events_per_s": round(summary["events"] / summary["seconds"]),
    "peak_rss_mib": round(rss_kib / 1024, 1),
}))
PY
