"""Summarises criterion's results for the validation benchmark (section 1). Prints one JSON
object: per benchmark, ns per iteration (median, min and max over criterion's samples, plus
criterion's own median estimate with its 95% interval) and the bytes one iteration handles.
`read` summarises one benchmark for the other criterion sections (bench/plan.py).

Usage: criterion.py CRITERION_DIR    ($CARGO_TARGET_DIR/criterion)
"""

import json
import sys
from pathlib import Path

from benchlib import summary

BENCHES = ["event_1k/validate_event", "event_1k/validate_and_registry_check",
           "event_1k/serde_json_value", "batch_1000/parse_batch"]


def read(root, name, since=None):
    """One benchmark's figures from criterion's last run of it (`<name>/new`). With `since`
    (seconds since the epoch), a result written before then is an error: a stale figure from
    an earlier run must not stand beside this run's."""
    d = Path(root) / name / "new"
    if since is not None and (d / "sample.json").stat().st_mtime < since:
        raise RuntimeError(f"criterion's {name} is from an earlier run (not measured in this one)")
    sample = json.loads((d / "sample.json").read_text())
    estimates = json.loads((d / "estimates.json").read_text())
    bench = json.loads((d / "benchmark.json").read_text())
    per_iter = [t / n for t, n in zip(sample["times"], sample["iters"])]
    median = estimates["median"]
    return {
        "ns_per_iter": summary(per_iter),
        "criterion_median_ns": median["point_estimate"],
        "criterion_median_ci95_ns": [median["confidence_interval"]["lower_bound"],
                                     median["confidence_interval"]["upper_bound"]],
        "samples": len(per_iter),
        "bytes_per_iter": (bench.get("throughput") or {}).get("Bytes"),
    }


def main():
    root = Path(sys.argv[1])
    print(json.dumps({name: read(root, name) for name in BENCHES}))


if __name__ == "__main__":
    main()
