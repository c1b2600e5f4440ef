"""Formatting helpers of bench/report.py and its section modules (bench/report_*.py): numbers,
summaries of repeated runs (median [min–max]), Markdown tables, goals and verdicts. Standard
library only."""

import math


def num(x, digits=0):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if abs(x) >= 100 or digits == 0:
        return f"{x:,.0f}".replace(",", " ")
    return f"{x:.{digits}f}"


def med(s):
    return s["median"] if isinstance(s, dict) and "median" in s else None


def span(s, digits=0, scale=1.0):
    """'median [min–max]' of a summary."""
    if not isinstance(s, dict) or "median" not in s:
        return "n/a"
    return (f"{num(s['median'] * scale, digits)} "
            f"[{num(s['min'] * scale, digits)}–{num(s['max'] * scale, digits)}]")


def ratio(a, b):
    return f"{a / b:.2f}×" if a and b else "n/a"


def times(x):
    return f"{x:.2f}×" if x is not None else "n/a"


def quotient(a, b):
    return a / b if a and b else None


def met(ok):
    if ok == "tie":
        return "**met within noise**"
    return "n/a" if ok is None else ("**met**" if ok else "**not met**")


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def goals_md(goals):
    """A table of goals, each (goal, measured, reference, ratio, verdict); a goal stated
    without a reference measured beside it has an empty reference and ratio."""
    rows = [[g, m, r, times(q) if r else "", met(ok)] for g, m, r, q, ok in goals]
    return table(["goal", "measured", "reference (same run)", "ratio", "verdict"], rows)


def stats(values):
    values = sorted(values)
    n = len(values)
    mid = values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2
    return {"median": mid, "min": values[0], "max": values[-1]}


def failed(section):
    return not isinstance(section, dict) or "error" in section


def error_note(name, section):
    msg = section.get("error", "missing") if isinstance(section, dict) else "missing"
    return f"_{name} did not complete in this run:_\n\n```\n{msg}\n```\n"
