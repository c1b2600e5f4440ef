"""BENCHMARKS.md's section on the sweep against one huge pending row, from
bench/sweep_backlog.py's figures: runs, keys per run against EIS_SWEEP_LIMIT, peak RSS per
run, and whether every key was archived exactly once."""

from reportlib import error_note, failed, num, table


def sweep_md(s):
    if failed(s):
        return error_note("The sweep benchmark", s)
    carried = f" (carried over from the run of {s['carried_from']})" if s.get("carried_from") else ""
    runs = s["per_run"]
    rows = [[i + 1, num(r["swept"]), num(r["marked"]), num(r["files"]), f"{r['peak_rss_mib']:.0f}",
             f"{r['cpu_s']:.2f}", f"{r['wall_s']:.1f}"] for i, r in enumerate(runs)]
    within = s["max_keys_per_run"] <= s["sweep_limit"]
    exact = s["every_key_archived_once"]
    return f"""One pending row of **{num(s['row_keys'])} keys** in `exp.pending_handoffs` (events
inserted by SQL), drained by scheduled release archiver runs (`events/archiver-scheduled.json`,
as `make archive` runs them) with `EIS_SWEEP_LIMIT={num(s['sweep_limit'])}`{carried}. The first
run cuts the row into rows of at most the limit; each run then takes at most the limit.

- Runs until drained: **{s['runs']}**; most keys swept by one run: **{num(s['max_keys_per_run'])}**
  ({'within' if within else '**over**'} the limit of {num(s['sweep_limit'])}).
- Peak RSS of a run (its process's maxrss): at most **{s['peak_rss_mib_max']:.0f} MiB**.
- Every key archived exactly once: **{'yes' if exact else 'no'}** ({num(s['archived_rows'])} rows in
  {num(s['objects'])} objects; missing {num(s['missing'])}, duplicates {num(s['duplicates'])},
  extra {num(s['extra'])}; keys left pending {num(s['left_pending'])}).

{table(["run", "keys swept", "keys settled", "files", "peak RSS MiB", "CPU s", "wall s"], rows)}
"""
