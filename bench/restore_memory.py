"""Restore: memory against hour size, and an hour bigger than one invocation, on the
release archiver, PostgreSQL and moto. Prints one JSON object.

- memory: an archive hour of SMALL events and one of LARGE events (raw files of 100 000
  events, as the runs write them; `eis-bench archive-hour`), each restored into an empty
  database by one `{"action":"restore"}` invocation with a long deadline: the archiver's peak
  RSS (wait4's ru_maxrss) and seconds of each, and their ratio (goal <= 1.5).
- deadline: the SMALL hour's rows deleted, then restored with EIS_LOCAL_DEADLINE_SECS=2 (and
  a safety margin of 1 s): invocations go on from each answer's `unfinished_from` and
  `resume` until none is left, as infra/local/range.sh does; the restored count and the
  hour's rows must both be exactly SMALL.

Usage: restore_memory.py EIS_BENCH ARCHIVER_BIN SMALL LARGE
Environment: DATABASE_URL (the section's own database), EIS_QUEUE_URL, EIS_BUCKET, AWS_*.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta

PREFIX = "restore-memory/"


def psql(sql):
    out = subprocess.run(["psql", os.environ["DATABASE_URL"], "-v", "ON_ERROR_STOP=1", "-Atqc", sql],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def archive_hour(bench, events, hours_ago):
    env = dict(os.environ, EIS_ARCHIVE_PREFIX=PREFIX)
    out = subprocess.run([bench, "archive-hour", str(events), str(hours_ago)], env=env,
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def invoke(archiver, payload, **settings):
    """One invocation: its answer, peak RSS (MiB) and seconds."""
    env = dict(os.environ, EIS_ARCHIVE_PREFIX=PREFIX, **{k: str(v) for k, v in settings.items()})
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump(payload, f)
        f.flush()
        started = time.monotonic()
        child = subprocess.Popen([archiver, f.name], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL)
        out = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.monotonic() - started
    if status != 0:
        raise RuntimeError(f"archiver exited with {status}: {out[-500:]!r}")
    return json.loads(out), usage.ru_maxrss / 1024, seconds


def restore_range(archiver, hour, **settings):
    """Invocations until the hour is done: the answers, the peak RSS and the seconds."""
    end = (datetime.fromisoformat(hour) + timedelta(hours=1)).isoformat()
    payload = {"action": "restore", "from": hour, "to": end}
    answers, peak, seconds = [], 0.0, 0.0
    while True:
        answer, rss, took = invoke(archiver, payload, **settings)
        answers.append(answer)
        peak, seconds = max(peak, rss), seconds + took
        if answer["unfinished_from"] is None:
            return answers, peak, seconds
        if len(answers) > 10_000:
            raise RuntimeError("no progress")
        payload = {"action": "restore", "from": answer["unfinished_from"], "to": end}
        if answer["resume"] is not None:
            payload["resume"] = answer["resume"]


def rows_in(hour):
    return int(psql(f"SELECT count(*) FROM exp.events WHERE \"timestamp\" >= '{hour}' "
                    f"AND \"timestamp\" < '{hour}'::timestamptz + interval '1 hour'"))


def memory(archiver, hour, events):
    answers, peak, seconds = restore_range(archiver, hour, EIS_LOCAL_DEADLINE_SECS=3600)
    restored = sum(a["restored"] for a in answers)
    return {"events": events, "files": sum(a["files"] for a in answers),
            "invocations": len(answers), "restored": restored, "rows": rows_in(hour),
            "peak_rss_mib": round(peak, 1), "seconds": round(seconds, 2),
            "events_per_second": round(restored / seconds) if seconds else None}


def main():
    bench, archiver, small, large = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    psql("SELECT exp.ensure_day_partition(d::date) FROM generate_series("
         "(now() AT TIME ZONE 'UTC')::date - 1, (now() AT TIME ZONE 'UTC')::date, '1 day') d")
    small_hour = archive_hour(bench, small, 3)["hour"]
    large_hour = archive_hour(bench, large, 4)["hour"]
    out = {"small": memory(archiver, small_hour, small),
           "large": memory(archiver, large_hour, large)}
    out["rss_ratio"] = round(out["large"]["peak_rss_mib"] / out["small"]["peak_rss_mib"], 2)
    out["goal_ratio"] = 1.5

    psql(f"DELETE FROM exp.events WHERE \"timestamp\" >= '{small_hour}' "
         f"AND \"timestamp\" < '{small_hour}'::timestamptz + interval '1 hour'")
    answers, peak, seconds = restore_range(archiver, small_hour, EIS_LOCAL_DEADLINE_SECS=2,
                                           EIS_SAFETY_MARGIN_MS=1000)
    restored = sum(a["restored"] for a in answers)
    rows = rows_in(small_hour)
    out["deadline"] = {
        "events": small, "deadline_secs": 2, "invocations": len(answers),
        "unfinished_answers": sum(1 for a in answers if a["unfinished_from"] is not None),
        "restored": restored, "present": sum(a["present"] for a in answers), "rows": rows,
        "exact": restored == small and rows == small, "peak_rss_mib": round(peak, 1),
        "seconds": round(seconds, 2)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
