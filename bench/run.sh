#!/usr/bin/env bash
# `make bench`: every benchmark, on the local stack, in one run on this machine.
# Writes bench/results/latest.json, the plot bench/results/ingest-throughput-p99.png and
# BENCHMARKS.md (generated from the JSON by bench/report.py). Benchmarks report; a number
# never fails the run. A section that breaks is recorded as an error and the others go on.
#
#   bench/run.sh                 full run (~25-35 min on 2 cores, release builds cached)
#   BENCH_QUICK=1 bench/run.sh   smoke run: small sizes, one round (a few minutes)
#   BENCH_ONLY="ingest_http archiver_scale" bench/run.sh
#                                only these sections (the others are recorded as not run)
#
# Uses a database (eis_bench), queue and bucket of its own, removed at the end; the local
# stack's own are left alone. Starts the stack when it is not running, and then stops it.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# lib.sh: stack paths, stack_running, db_url_named, remove_scratch (shared with infra/local).
# shellcheck source=../infra/lib.sh
source "$ROOT/infra/lib.sh"
cd "$ROOT"
log() { printf '[bench] %s\n' "$*" >&2; }

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/eis/target}
QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
  ROUNDS=1 HTTP_SECONDS=3 PG_EVENTS=5000 ENCODE_EVENTS=10000 DRAIN_EVENTS=10000 DRAIN_RUNS=1
  COMPACT_EVENTS=10000 SCALE_EVENTS=20000 SCALE_ROUNDS=1
  COLD_RUNS=5 PROFILE_EVENTS=1000 PROFILE_REQUESTS="50 1" CRITERION_ARGS=(--warm-up-time 0.5 --measurement-time 1)
  HEALTH_EVENTS=50000 HEALTH_UNITS=5000 HEALTH_INCREMENT=1000 HEALTH_DAYS="15000 150000"
  FLOOD_EVENTS=2000 RESTORE_EVENTS=5000 RESTORE_SMALL=20000 RESTORE_LARGE=200000
  SWEEP_KEYS=20000 SWEEP_LIMIT=5000 SDK_EVENTS=5000
  ERASURE_HOURS=24 ERASURE_FILES=2 ERASURE_FILE_EVENTS=2000 ERASURE_UNITS=5000
else
  ROUNDS=3 HTTP_SECONDS=10 PG_EVENTS=50000 ENCODE_EVENTS=100000 DRAIN_EVENTS=100000 DRAIN_RUNS=3
  COMPACT_EVENTS=100000 SCALE_EVENTS=200000 SCALE_ROUNDS=2
  COLD_RUNS=20 PROFILE_EVENTS=5000 PROFILE_REQUESTS="200 4" CRITERION_ARGS=()
  HEALTH_EVENTS=1000000 HEALTH_UNITS=50000 HEALTH_INCREMENT=10000 HEALTH_DAYS="150000 1500000"
  FLOOD_EVENTS=10000 RESTORE_EVENTS=50000 RESTORE_SMALL=100000 RESTORE_LARGE=1000000
  SWEEP_KEYS=1000000 SWEEP_LIMIT=50000 SDK_EVENTS=20000
  # A week of hours, two raw files of 5 000 events each per hour, 20 000 units.
  ERASURE_HOURS=168 ERASURE_FILES=2 ERASURE_FILE_EVENTS=5000 ERASURE_UNITS=20000
fi
# Every section, in the order they run; BENCH_ONLY picks some of them.
SECTIONS=(validation plan pg_write ingest_http encoding drain compaction archiver_scale health_job quarantine restore_memory sweep_backlog erasure_find sdk_python sdk_rust cold_start profile)
ONLY=${BENCH_ONLY:-}
for key in $ONLY; do
  [[ " ${SECTIONS[*]} " == *" $key "* ]] || { log "BENCH_ONLY: no section $key (sections: ${SECTIONS[*]})"; exit 2; }
done
# Concurrent archiver runs of the scale-out section.
SCALE_RUNS="1 2 4"
# An hour as the scheduled runs leave it: one raw file per 5-minute run, 2% of the events twice.
COMPACT_FILES=12 COMPACT_DUPLICATE_PCT=2
RESULTS=$ROOT/bench/results
BENCH_VENV=$LOCAL/bench-venv
WORK=$(mktemp -d)
mkdir -p "$RESULTS"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
STARTED_AT=$(date -u +%Y-%m-%dT%H:%M:%SZ)
T0=$SECONDS

# --- Tools: wrk and GNU time from Debian, matplotlib in a venv of the bench's own.
missing=()
command -v wrk >/dev/null || missing+=(wrk)
[ -x /usr/bin/time ] || missing+=(time)
command -v valgrind >/dev/null || missing+=(valgrind)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! { [ -x "$BENCH_VENV/bin/python" ] && cmp -s bench/requirements.txt "$BENCH_VENV/.requirements"; }; then
  log "installing the bench's Python tools into $BENCH_VENV"
  python3 -m venv "$BENCH_VENV"
  "$BENCH_VENV/bin/pip" install --quiet --disable-pip-version-check -r bench/requirements.txt
  cp bench/requirements.txt "$BENCH_VENV/.requirements"
fi

# --- The local stack: reused when running, else started here and stopped at the end.
STARTED_STACK=0
stack_running || STARTED_STACK=1
infra/local/up.sh
# shellcheck source=/dev/null  # .local/env, written by up.sh
source "$ENV_FILE"
PY=$VENV/bin/python

# --- Release builds (cached in CARGO_TARGET_DIR). One cargo command per binary: building
# them together would unify features and link the archiver's S3 client into ingest.
log "building release binaries (slow when not cached: lto, one codegen unit)"
cargo build --quiet --release --locked -p ingest --bin ingest
cargo build --quiet --release --locked -p archiver --bin archiver
# Symbols kept for eis-bench only (a package override: its dependencies stay shared with the
# archiver's build), so that callgrind can name functions.
cargo build --quiet --release --locked -p eis-bench --config 'profile.release.package.eis-bench.strip=false'
INGEST=$CARGO_TARGET_DIR/release/ingest
EIS_BENCH=$CARGO_TARGET_DIR/release/eis-bench

# --- Resources of the bench's own.
bench_scratch eis_bench
cleanup() {
  set +e
  remove_bench_scratch
  if [ "$STARTED_STACK" = 1 ]; then infra/local/down.sh; fi
}
trap cleanup EXIT

psql "$ADMIN_DB_URL" -qc "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" >/dev/null
psql "$ADMIN_DB_URL" -qc "CREATE DATABASE $DB_NAME" >/dev/null
DATABASE_URL=$BENCH_DB_URL cargo run --quiet --locked --bin migrator >&2
# Day partitions around today, as the archiver's maintenance keeps them in production.
psql "$BENCH_DB_URL" -qAtc "SELECT exp.ensure_day_partition(d::date)
  FROM generate_series((now() AT TIME ZONE 'UTC')::date - 1, (now() AT TIME ZONE 'UTC')::date + 1, '1 day') d" >/dev/null
read -r QUEUE_URL _ < <($PY infra/local/resources.py --queue "$NAME" --bucket "$NAME")

# --- Sections: each writes $WORK/<key>.json; a failure is recorded, not fatal.
section() {
  local key=$1 started=$SECONDS
  shift
  if [ -n "$ONLY" ] && [[ " $ONLY " != *" $key "* ]]; then
    jq -n --arg e "not run: BENCH_ONLY=\"$ONLY\"" '{error: $e}' >"$WORK/$key.json"
    echo 0 >"$WORK/$key.seconds"
    return 0
  fi
  log "== $key"
  # Not in an `if`: there bash would ignore `set -e` inside the section and hide its errors.
  set +e
  (set -e; "$@") >"$WORK/$key.json" 2> >(tee "$WORK/$key.log" >&2)
  local status=$?
  set -e
  if [ "$status" = 0 ]; then
    log "$key done in $((SECONDS - started)) s"
  else
    log "$key FAILED (recorded in latest.json)"
    jq -n --arg e "exit status $status: $(tail -5 "$WORK/$key.log")" '{error: $e}' >"$WORK/$key.json"
  fi
  echo "$((SECONDS - started))" >"$WORK/$key.seconds"
}

validation() {
  cargo bench --quiet --locked -p eis-contract --bench validate -- "${CRITERION_ARGS[@]}" >&2
  $PY bench/criterion.py "$CARGO_TARGET_DIR/criterion"
}

# The tracking plan's cost (issue 28; shared/contract/benches/plan.rs): validation per event
# with a 50-type plan against none, in one criterion run, an event the plan quarantines, and
# the plan's parse and compile. bench/plan.py refuses a criterion result older than the run.
plan() {
  local started
  started=$(date +%s)
  EIS_BENCH_PLAN_SETUP=$WORK/plan-setup.json \
    cargo bench --quiet --locked -p eis-contract --bench plan -- "${CRITERION_ARGS[@]}" >&2
  $PY bench/plan.py "$CARGO_TARGET_DIR/criterion" "$WORK/plan-setup.json" "$started"
}

pg_write() {
  DATABASE_URL=$BENCH_DB_URL "$EIS_BENCH" pg-write "$PG_EVENTS" "$ROUNDS"
}

ingest_http() {
  mkdir -p "$WORK/bodies"
  "$EIS_BENCH" bodies "$WORK/bodies" >/dev/null
  DATABASE_URL=$BENCH_DB_URL EIS_QUEUE_URL=$QUEUE_URL MOTO_PID=$(cat "$LOCAL/moto.pid") \
    $PY bench/ingest_http.py "$INGEST" "$WORK/bodies" "$HTTP_SECONDS" "$ROUNDS" "$EIS_BENCH"
}

encoding() {
  mkdir -p "$WORK/encode"
  "$EIS_BENCH" encode "$ENCODE_EVENTS" "$ROUNDS" "$WORK/encode" >"$WORK/encode-ours.json"
  $PY bench/encode_ref.py "$WORK/encode" "$ROUNDS" >"$WORK/encode-refs.json"
  jq -n --slurpfile ours "$WORK/encode-ours.json" --slurpfile refs "$WORK/encode-refs.json" \
    '{ours: $ours[0], refs: $refs[0]}'
}

drain() {
  local i
  for i in $(seq 1 "$DRAIN_RUNS"); do
    log "drain run $i of $DRAIN_RUNS"
    bench/memory-drain.sh "$DRAIN_EVENTS"
  done | jq -s '{runs: .}'
}

compaction() {
  local i
  for i in $(seq 1 "$ROUNDS"); do
    log "compaction round $i of $ROUNDS"
    DATABASE_URL=$BENCH_DB_URL EIS_QUEUE_URL=$QUEUE_URL EIS_BUCKET=$NAME \
      "$EIS_BENCH" compact "$COMPACT_EVENTS" "$COMPACT_FILES" "$COMPACT_DUPLICATE_PCT"
  done | jq -s '{runs: .}'
}

archiver_scale() {
  # shellcheck disable=SC2086  # the run counts
  DATABASE_URL=$BENCH_DB_URL MOTO_PID=$(cat "$LOCAL/moto.pid") EIS_SCALE_NAME="$NAME-scale" \
    $PY bench/archiver_scale.py "$CARGO_TARGET_DIR/release/archiver" "$EIS_BENCH" \
    "$SCALE_EVENTS" "$SCALE_ROUNDS" $SCALE_RUNS
}

# Runs a command with DATABASE_URL naming a migrated database of its own, ${DB_NAME}_$1,
# dropped afterwards: the sections that fill a database leave the bench's own alone.
in_own_database() {
  local db=${DB_NAME}_$1 url
  shift
  url=$(db_url_named "$db")
  psql "$ADMIN_DB_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
  DATABASE_URL=$url cargo run --quiet --locked --bin migrator >&2
  DATABASE_URL=$url "$@"
  psql "$ADMIN_DB_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
}

# The experiment-health job on a generated mix (bench/health_job.py).
health_job() {
  # shellcheck disable=SC2086  # the two day sizes
  in_own_database health $PY bench/health_job.py "$CARGO_TARGET_DIR/release/archiver" \
    "$HEALTH_EVENTS" "$HEALTH_UNITS" "$HEALTH_INCREMENT" $HEALTH_DAYS
}

# Quarantine cost per rejected event, a flood of invalid events beside valid ones, and a
# restore of a dropped day (bench/quarantine.py).
quarantine() {
  in_own_database quarantine env EIS_QUEUE_URL="$QUEUE_URL" EIS_BUCKET="$NAME" MOTO_PID="$(cat "$LOCAL/moto.pid")" \
    $PY bench/quarantine.py "$INGEST" "$CARGO_TARGET_DIR/release/archiver" "$FLOOD_EVENTS" "$RESTORE_EVENTS"
}

# Restore's peak RSS for an hour of RESTORE_SMALL against RESTORE_LARGE events, and an hour
# restored over several short invocations (bench/restore_memory.py).
restore_memory() {
  in_own_database restore env EIS_QUEUE_URL="$QUEUE_URL" EIS_BUCKET="$NAME" \
    $PY bench/restore_memory.py "$EIS_BENCH" "$CARGO_TARGET_DIR/release/archiver" \
    "$RESTORE_SMALL" "$RESTORE_LARGE"
}

# One pending row of SWEEP_KEYS keys drained by scheduled archiver runs with
# EIS_SWEEP_LIMIT=SWEEP_LIMIT (bench/sweep_backlog.py).
sweep_backlog() {
  in_own_database sweep env EIS_SWEEP_NAME="$NAME-sweep" \
    $PY bench/sweep_backlog.py "$CARGO_TARGET_DIR/release/archiver" "$SWEEP_KEYS" "$SWEEP_LIMIT"
}

# What an erasure reads to find one unit in an archive of ERASURE_HOURS hours (issue 27):
# `eis-bench erasure-find` writes the archive into a bucket of its own, records a request
# for a unit present in three of the hours and runs the erasure (bench/src/erasure_find.rs).
erasure_find() {
  local name=$NAME-erasure status=0
  $PY infra/local/resources.py --queue "$name" --bucket "$name" >/dev/null
  in_own_database erasure env EIS_QUEUE_URL="$QUEUE_URL" EIS_BUCKET="$name" \
    "$EIS_BENCH" erasure-find "$ERASURE_HOURS" "$ERASURE_FILES" "$ERASURE_FILE_EVENTS" "$ERASURE_UNITS" \
    || status=$?
  $PY infra/local/resources.py --queue "$name" --bucket "$name" --remove
  return "$status"
}

# The Python SDK's capture() CPU against posthog-python's, and its full default queue's RSS
# (bench/sdk_python.py; both clients point at a closed 127.0.0.1 port).
sdk_python() {
  $PY bench/sdk_python.py "$SDK_EVENTS" "$ROUNDS"
}

# The Rust SDK's end-to-end events/s into the local ingest against wrk on the same server
# (bench/sdk_throughput.py).
sdk_rust() {
  mkdir -p "$WORK/bodies"
  "$EIS_BENCH" bodies "$WORK/bodies" >/dev/null
  DATABASE_URL=$BENCH_DB_URL EIS_QUEUE_URL=$QUEUE_URL MOTO_PID=$(cat "$LOCAL/moto.pid") \
    $PY bench/sdk_throughput.py "$INGEST" "$EIS_BENCH" "$WORK/bodies" "$HTTP_SECONDS" "$ROUNDS"
}

cold_start() {
  local sizes
  sizes=$(
    for f in "$INGEST" "$CARGO_TARGET_DIR/release/archiver" .aws-sam/build/*/bootstrap; do
      # An `if`, not `&&`: a missing last file (no `sam build` yet) must not fail the loop.
      if [ -f "$f" ]; then
        jq -n --arg path "$f" --argjson bytes "$(stat -c %s "$f")" \
          --arg modified "$(date -u -r "$f" +%Y-%m-%dT%H:%M:%SZ)" '{path: $path, bytes: $bytes, modified: $modified}'
      fi
    done | jq -s .
  )
  DATABASE_URL=$BENCH_DB_URL EIS_QUEUE_URL=$QUEUE_URL $PY bench/coldstart.py "$INGEST" "$COLD_RUNS" \
    | jq --argjson sizes "$sizes" '. + {binaries: $sizes}'
}

profile() {
  local path
  for path in ingest archive; do
    local symbol=eis_bench::cpu_path::ingest_batches
    [ "$path" = archive ] && symbol=eis_bench::encode::encode
    valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.$path" \
      --toggle-collect="$symbol*" "$EIS_BENCH" cpu-path "$path" "$PROFILE_EVENTS" >&2 2>"$WORK/valgrind.$path.log"
    $PY bench/callgrind_top.py "$WORK/callgrind.$path" "$PROFILE_EVENTS"
  done | jq -s '{ingest: .[0], archive: .[1]}' >"$WORK/profile-paths.json"
  # Whole requests: single events, then batches of 500 (counts: PROFILE_REQUESTS).
  mkdir -p "$WORK/bodies" "$WORK/profile"
  "$EIS_BENCH" bodies "$WORK/bodies" >/dev/null
  # shellcheck disable=SC2086  # two counts
  DATABASE_URL=$BENCH_DB_URL $PY bench/profile_ingest.py "$EIS_BENCH" "$WORK/bodies" "$WORK/profile" $PROFILE_REQUESTS \
    | jq --slurpfile paths "$WORK/profile-paths.json" '$paths[0] + {requests: .}'
}

for key in "${SECTIONS[@]}"; do
  section "$key" "$key"
done

# --- latest.json: machine, versions, every figure; then BENCHMARKS.md and the plot.
version() { "$@" 2>&1 | head -1 || true; }
jq -n \
  --arg started "$STARTED_AT" --arg load_start "$LOAD_START" --arg load_end "$(cut -d' ' -f1-3 /proc/loadavg)" \
  --argjson quick "$QUICK" --argjson seconds "$((SECONDS - T0))" \
  --arg nproc "$(nproc)" --arg cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" \
  --arg mem "$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)" \
  --arg kernel "$(uname -r)" \
  --arg commit "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!bench' ':!BENCHMARKS.md' || echo '+uncommitted')" \
  --arg rustc "$(version rustc -V)" --arg cargo "$(version cargo -V)" \
  --arg wrk "$(version wrk -v)" --arg valgrind "$(version valgrind --version)" \
  --arg postgres "$(psql "$ADMIN_DB_URL" -Atc 'show server_version')" \
  --arg moto "$($PY -c 'import moto; print(moto.__version__)')" \
  --arg python "$(version "$PY" --version)" \
  --arg matplotlib "$("$BENCH_VENV/bin/python" -c 'import matplotlib; print(matplotlib.__version__)')" \
  --arg sizes "erasure_hours=$ERASURE_HOURS erasure_files=$ERASURE_FILES erasure_file_events=$ERASURE_FILE_EVENTS erasure_units=$ERASURE_UNITS sdk_events=$SDK_EVENTS sweep_keys=$SWEEP_KEYS sweep_limit=$SWEEP_LIMIT flood_events=$FLOOD_EVENTS restore_events=$RESTORE_EVENTS health_events=$HEALTH_EVENTS health_units=$HEALTH_UNITS health_increment=$HEALTH_INCREMENT health_days=${HEALTH_DAYS// /,} rounds=$ROUNDS http_seconds=$HTTP_SECONDS pg_events=$PG_EVENTS encode_events=$ENCODE_EVENTS drain_events=$DRAIN_EVENTS drain_runs=$DRAIN_RUNS compact_events=$COMPACT_EVENTS compact_files=$COMPACT_FILES scale_events=$SCALE_EVENTS scale_rounds=$SCALE_ROUNDS scale_runs=$SCALE_RUNS cold_runs=$COLD_RUNS profile_events=$PROFILE_EVENTS profile_requests=$PROFILE_REQUESTS" \
  --arg only "$ONLY" \
  '{started_at: $started, quick: ($quick == 1), only: $only, total_seconds: $seconds, sizes: $sizes, commit: $commit,
    machine: {nproc: ($nproc | tonumber), cpu: $cpu, memory: $mem, kernel: $kernel,
              load_average_start: $load_start, load_average_end: $load_end},
    versions: {rustc: $rustc, cargo: $cargo, wrk: $wrk, valgrind: $valgrind, postgres: $postgres,
               moto: $moto, python: $python, matplotlib: $matplotlib}}' >"$WORK/meta.json"
# Each section's object under its key, with the seconds it took.
for key in "${SECTIONS[@]}"; do
  jq --arg key "$key" --argjson s "$(cat "$WORK/$key.seconds")" '{($key): (. + {section_seconds: $s})}' \
    "$WORK/$key.json"
done | jq -s --slurpfile meta "$WORK/meta.json" '$meta[0] + add' >"$WORK/latest.json"
# A partial run (BENCH_ONLY) replaces only its sections: the others are carried over from the
# previous latest.json, each marked with the run it came from.
if [ -n "$ONLY" ] && [ -f "$RESULTS/latest.json" ]; then
  jq -s --arg sections "${SECTIONS[*]}" '
    .[0] as $old | .[1] as $new
    | $new + ([$sections | split(" ")[]
               | select(($new[.].error // "") | startswith("not run"))
               | select($old[.] != null and ($old[.].error // "" | startswith("not run") | not))
               | {key: ., value: ($old[.] + {carried_from: ($old[.].carried_from // "\($old.started_at) at \($old.commit)")})}]
              | from_entries)' "$RESULTS/latest.json" "$WORK/latest.json" >"$WORK/merged.json"
  mv "$WORK/merged.json" "$WORK/latest.json"
fi
mv "$WORK/latest.json" "$RESULTS/latest.json"
"$BENCH_VENV/bin/python" bench/report.py "$RESULTS/latest.json" BENCHMARKS.md "$RESULTS/ingest-throughput-p99.png"
# The capacity plan needs a full run's sections; a partial (BENCH_ONLY) run leaves it as it was.
if [ -z "${BENCH_ONLY:-}" ]; then
  "$BENCH_VENV/bin/python" bench/capacity.py "$RESULTS/latest.json" docs/capacity.md
fi
log "done in $((SECONDS - T0)) s: $RESULTS/latest.json, BENCHMARKS.md"
