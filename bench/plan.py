"""Summarises the tracking plan's criterion bench (shared/contract/benches/plan.rs, section 14):
per benchmark, ns per iteration (one event, or one parse / compile of the 50-type plan), the
setup's sizes the bench wrote, and the goal's ratio, with-plan / no-plan, from the medians
of this run's two measurements (with the range their criterion 95% intervals allow). Prints
one JSON object.

Usage: plan.py CRITERION_DIR SETUP_JSON STARTED_EPOCH
    CRITERION_DIR  $CARGO_TARGET_DIR/criterion
    SETUP_JSON     the file the bench wrote (EIS_BENCH_PLAN_SETUP)
    STARTED_EPOCH  when the bench started (seconds): older criterion results are refused
"""

import json
import sys
from pathlib import Path

from criterion import read

BENCHES = ["plan_50_types/no_plan", "plan_50_types/with_plan",
           "plan_50_failing/no_plan", "plan_50_failing/quarantined",
           "plan_50_load/parse", "plan_50_load/compile"]


def ratio(benches, num, den):
    """num / den from the medians over the samples, and the range the two criterion 95%
    intervals of the medians allow (num low / den high to num high / den low)."""
    a, b = benches[num], benches[den]
    (alo, ahi), (blo, bhi) = a["criterion_median_ci95_ns"], b["criterion_median_ci95_ns"]
    return {"median": a["ns_per_iter"]["median"] / b["ns_per_iter"]["median"],
            "ci95": [alo / bhi, ahi / blo]}


def main():
    root, setup, since = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
    benches = {name: read(root, name, since) for name in BENCHES}
    print(json.dumps({
        "setup": json.loads(setup.read_text()),
        "benches": benches,
        "ratio": ratio(benches, "plan_50_types/with_plan", "plan_50_types/no_plan"),
        "failing_ratio": ratio(benches, "plan_50_failing/quarantined", "plan_50_failing/no_plan"),
    }))


if __name__ == "__main__":
    main()
