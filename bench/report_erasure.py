"""BENCHMARKS.md's section on finding a unit to erase (issue 27), from `eis-bench
erasure-find`'s figures: the bytes an erasure reads to find one unit in an archive of many
hours (every file's footer and `unit_id` bloom filter, then the candidate files whole),
against the archive's size, which is what reading every file whole would cost."""

from reportlib import error_note, failed, num, table


def mb(b):
    return f"{num(b)} B ({b / 1e6:.1f} MB)"


def pct(x):
    return f"{100 * x:.1f}%" if x >= 0.001 else f"{100 * x:.3f}%"


def find_md(e, goals):
    goal = "Erasure: bytes read to find one unit, against reading every hour file whole (reported)"
    if failed(e):
        goals.append((goal, "n/a", "", None, None))
        return error_note("The erasure benchmark", e)
    carried = f" (carried over from the run of {e['carried_from']})" if e.get("carried_from") else ""
    f, t = e["per_file"], e["target"]
    unit_hours = len(t["hours_ago"])
    others = e["archive_files"] - unit_hours * e["files_per_hour"]
    ratio = e["bytes_read"] / e["archive_bytes"]
    goals.append((goal, f"{pct(ratio)}: {mb(e['bytes_read'])}",
                  f"{mb(e['archive_bytes'])}, the archive", ratio, None))
    rows = [
        ["hours in the archive", num(e["hours"])],
        ["hour files (raw, as the scheduled runs write them)",
         f"{num(e['archive_files'])} ({e['files_per_hour']} per hour, {num(e['file_events'])} events each)"],
        ["archive size: the hour files' objects", mb(e["archive_bytes"])],
        ["files checked: footer and `unit_id` bloom filter read", num(e["files_checked"])],
        ["files read whole", f"{num(e['files_read'])} (the unit's {unit_hours} hours, one file each to "
                             f"confirm, + {num(e['false_positive_files'])} false positives)"],
        ["**bytes read to find the unit**", f"**{mb(e['bytes_read'])} = {pct(ratio)} of the archive**"],
        ["of which footers and filters (every file)",
         f"{mb(e['metadata_bytes_read'])} = {pct(e['metadata_ratio'])}"],
        ["of which files read whole", mb(e["whole_file_bytes_read"])],
        ["hours rewritten without the unit / events removed",
         f"{e['rewritten']} / {num(e['removed'])} (the unit had {num(t['events'])} events)"],
        ["per file: size; footer; `unit_id` bloom filter; fetched to check it",
         f"{num(f['bytes_mean'])}; {num(f['footer_bytes_mean'])}; {num(f['bloom_filter_bytes_mean'])}; "
         f"{num(f['fetched_bytes_mean'])} B (means)"],
        ["erasure run, wall (PostgreSQL step, scan, the rewrites; through moto)",
         f"{e['erasure_seconds']:.1f} s"],
    ]
    expected = e["bloom_fpp"] * others
    hours = t["hours_ago"]
    when = ", ".join(str(h) for h in hours[:-1]) + f" and {hours[-1]}" if len(hours) > 1 else str(hours[0])
    needed = f["footer_and_filter_bytes_mean"] * e["archive_files"] / e["archive_bytes"]
    return f"""`eis-bench erasure-find`{carried}: an archive of {num(e['hours'])} hours before now in a bucket of
its own, {e['files_per_hour']} raw files per hour of {num(e['file_events'])} generated events each
({num(e['archive_events'])} events, {num(e['units'])} units), and one more unit in only {unit_hours}
of the hours ({when} hours ago; a few events in every file of them). One erasure request for
that unit, recorded through `ErasureStore::record` and carried by `archiver::erasure::run` as
the scheduled run carries it. The figures are its receipt's archive counts: `bytes_read` is
what the scan fetched to find the unit; the rewrite of its hours then reads and writes those
hours again through compaction, which is not in it.

{table(["figure", "value"], rows)}

A unit is found by reading **{pct(ratio)} of the archive** where reading every file whole
reads all of it: every file's footer and bloom filter, then the candidate files whole, which
are the unit's hours plus the filters' false positives at fpp {e['bloom_fpp']}
({num(e['false_positive_files'])} here; at most about {expected:.1f} expected among the
{num(others)} files without the unit). Nearly all of it is the check of each file: the scan's
first ranged read fetches {num(f['fetched_bytes_mean'])} B of each file, where its footer and
filter are {num(f['footer_and_filter_bytes_mean'])} B ({pct(needed)} of the archive in all).
"""
