"""The references of the archive-encoding benchmark: DuckDB (threads=1) and pyarrow (one
thread) converting the same events from JSON lines to zstd Parquet (level 3, the archiver's),
and gzip'd JSON lines for size. Also checks that the archiver's file reads back in full.
Prints one JSON object.

Usage: encode_ref.py DIR RUNS    (DIR holds events.jsonl and eis.parquet from `eis-bench encode`)
"""

import gzip
import json
import sys
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.json as pj
import pyarrow.parquet as pq

from benchlib import summary

ZSTD_LEVEL = 3


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    # process_time covers every thread of this process: the CPU a conversion really used.
    return time.perf_counter() - wall, time.process_time() - cpu


def column_bytes(path):
    """Compressed bytes per top-level column: where a file's size goes."""
    meta = pq.ParquetFile(path).metadata
    sizes = {}
    for g in range(meta.num_row_groups):
        for c in range(meta.num_columns):
            col = meta.row_group(g).column(c)
            top = col.path_in_schema.split(".")[0]
            sizes[top] = sizes.get(top, 0) + col.total_compressed_size
    return dict(sorted(sizes.items(), key=lambda kv: -kv[1]))


def main():
    work, runs = Path(sys.argv[1]), int(sys.argv[2])
    jsonl = work / "events.jsonl"
    raw = jsonl.read_bytes()
    events = raw.count(b"\n")

    con = duckdb.connect()
    con.execute("SET threads = 1")
    duck_out = work / "duckdb.parquet"

    def duck():
        con.execute(
            f"COPY (SELECT * FROM read_json('{jsonl}', format = 'newline_delimited')) "
            f"TO '{duck_out}' (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL {ZSTD_LEVEL})")

    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    arrow_out = work / "pyarrow.parquet"

    def arrow():
        table = pj.read_json(jsonl, read_options=pj.ReadOptions(use_threads=False))
        pq.write_table(table, arrow_out, compression="zstd", compression_level=ZSTD_LEVEL)

    results = {}
    for name, fn, out in (("duckdb", duck, duck_out), ("pyarrow", arrow, arrow_out)):
        fn()  # warm-up: imports, JSON schema sniffing caches
        times = [timed(fn) for _ in range(runs)]
        rows = con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0]
        if rows != events:
            raise RuntimeError(f"{name} wrote {rows} rows of {events}")
        results[name] = {
            "events_per_cpu_s": summary([events / cpu for _, cpu in times]),
            "events_per_wall_s": summary([events / wall for wall, _ in times]),
            "bytes": out.stat().st_size,
            "column_bytes": column_bytes(out),
        }
    ours = con.execute(f"SELECT count(*) FROM read_parquet('{work / 'eis.parquet'}')").fetchone()[0]
    if ours != events:
        raise RuntimeError(f"the archiver's file holds {ours} rows of {events}")
    print(json.dumps({
        "events": events,
        "jsonl_bytes": len(raw),
        "jsonl_gzip_bytes": len(gzip.compress(raw, compresslevel=6)),
        "versions": {"duckdb": duckdb.__version__, "pyarrow": pa.__version__},
        "archiver_column_bytes": column_bytes(work / "eis.parquet"),
        **results,
    }))


if __name__ == "__main__":
    main()
