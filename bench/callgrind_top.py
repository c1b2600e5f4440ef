"""Summarises a callgrind profile (section "where the time goes"): instructions in all, per
event, by crate (self cost, so the parts add up) and the costliest functions. Prints one JSON
object.

Usage: callgrind_top.py CALLGRIND_OUT EVENTS [TOP]
"""

import collections
import json
import re
import subprocess
import sys

LINE = re.compile(r"^\s*([\d,]+)\s+\(\s*([\d.]+)%\)\s+(.*)$")
CRATE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)::")
# C and runtime symbols without a Rust path, by what they do.
C_SYMBOLS = [
    (re.compile(r"^(ZSTD|HUF|FSE|HIST)_"), "zstd (C)"),
    (re.compile(r"(?i)sha256|sha1|hmac|md5|aws_lc|OPENSSL|EVP_|ossl_"), "crypto (SHA-2, HMAC)"),
    (re.compile(r"malloc|free|realloc|calloc|_int_|tcache|arena"), "allocator (glibc)"),
    (re.compile(r"mem(cpy|move|set|cmp|chr)|str(len|cmp)"), "memcpy & co (glibc)"),
]


def area(symbol):
    for pattern, name in C_SYMBOLS:
        if pattern.search(symbol):
            return name
    m = CRATE.search(symbol)
    if not m:
        return "other"
    crate = m.group(1)
    return "std" if crate in ("core", "alloc", "std") else crate


def main():
    out, events = sys.argv[1], int(sys.argv[2])
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 12
    text = subprocess.run(["callgrind_annotate", "--threshold=100", out],
                          check=True, capture_output=True, text=True).stdout
    total, functions = None, []
    for line in text.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        ir, what = int(m.group(1).replace(",", "")), m.group(3)
        if what.startswith("PROGRAM TOTALS"):
            total = ir
            continue
        # "file:function [object]": the function is between the first ':' and the object.
        symbol = re.sub(r"\s+\[[^\]]*\]$", "", what.split(":", 1)[1] if ":" in what else what)
        functions.append((ir, symbol))
    if not total:
        raise RuntimeError("no PROGRAM TOTALS in callgrind_annotate output")
    by_area = collections.Counter()
    for ir, symbol in functions:
        by_area[area(symbol)] += ir
    print(json.dumps({
        "instructions": total,
        "events": events,
        "instructions_per_event": total / events,
        "by_crate": [{"crate": k, "share": v / total} for k, v in by_area.most_common(10)],
        "top_functions": [{"function": s[:160], "share": ir / total}
                          for ir, s in sorted(functions, reverse=True)[:top]],
    }))


if __name__ == "__main__":
    main()
