"""The sample-ratio test's reference values: scipy.stats.chisquare on generated counts, written
to tests/fixtures/srm/scipy_chisquare.json, which tests/it/srm.rs compares archiver::health::srm with
(1e-9 relative). test_srm_reference.py checks that the file is what this script generates.

Usage: python tests/python/srm_reference.py   (rewrites the fixture)
"""

import json
import random
import sys
from pathlib import Path

import scipy
from scipy.stats import chisquare

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "srm" / "scipy_chisquare.json"


def counts():
    """Deterministic cases: tiny, balanced, near-balanced, skewed far into the tail (down to
    p values that underflow), large, 2 to 10 variants, equal and unequal weights."""
    rng = random.Random(15)
    cases = [
        ([0, 1], [1, 1]), ([1, 1], [1, 1]), ([0, 5], [1, 1]), ([3, 0, 2], [1, 1, 1]),
        ([1, 0], [3, 1]), ([10400, 9600], [1, 1]), ([540, 460], [1, 1]), ([500, 250, 250], [2, 1, 1]),
        ([1_000_000_000, 1], [1, 1]), ([10**9, 10**9 + 1], [1, 1]), ([123_456_789, 123_400_000], [1, 1]),
    ]
    for _ in range(300):
        k = rng.randint(2, 10)
        weights = [1] * k if rng.random() < 0.5 else [rng.randint(1, 9) for _ in range(k)]
        scale = 10 ** rng.uniform(0, 9)
        total_w = sum(weights)
        # Skew: 0 (balanced up to noise) to large, so p spans 1 down to underflow.
        skew = rng.choice([0, 0, 1e-4, 1e-3, 1e-2, 0.05, 0.2, 0.5])
        observed = []
        for w in weights:
            expected = scale * w / total_w
            noise = rng.gauss(0, max(expected, 1) ** 0.5)
            observed.append(max(0, round(expected * (1 + rng.uniform(-skew, skew)) + noise)))
        if sum(observed) == 0:
            observed[0] = 1
        cases.append((observed, weights))
    return cases


def reference():
    out = []
    for observed, weights in counts():
        total = sum(observed)
        f_exp = [w / sum(weights) * total for w in weights]
        stat, p = chisquare(observed, f_exp)
        out.append({"observed": observed, "weights": weights,
                    "chi_squared": float(stat), "p_value": float(p)})
    return {"scipy": scipy.__version__, "cases": out}


def main():
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps(reference(), indent=1) + "\n")
    print(f"wrote {FIXTURE}", file=sys.stderr)


if __name__ == "__main__":
    main()
