"""Runs one DuckDB query over the local quarantine (docs/quarantine.md): downloads the files
under rejected/ of the local bucket (EIS_BUCKET on moto, from .local/env) into a temporary
folder and exposes them as the view `rejected`. Prints the rows as JSON lines.

Usage: .local/venv/bin/python infra/local/rejected.py "SELECT code, count(*) FROM rejected GROUP BY code"
"""

import json
import os
import sys
import tempfile
from pathlib import Path

import boto3
import duckdb


def main() -> None:
    query = sys.argv[1] if len(sys.argv) > 1 else "SELECT * FROM rejected"
    s3, bucket = boto3.client("s3"), os.environ["EIS_BUCKET"]
    with tempfile.TemporaryDirectory() as tmp:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="rejected/")
        keys = [o["Key"] for page in pages for o in page.get("Contents", [])
                if o["Key"].endswith(".parquet")]
        if not keys:
            sys.exit("no quarantine files yet (an archiver run writes them: make archive)")
        for i, key in enumerate(keys):
            s3.download_file(bucket, key, str(Path(tmp) / f"{i}.parquet"))
        con = duckdb.connect()
        con.execute("SET TimeZone='UTC'")
        con.execute(f"CREATE VIEW rejected AS SELECT * FROM read_parquet('{tmp}/*.parquet', union_by_name = true)")
        result = con.execute(query)
        names = [d[0] for d in result.description]
        for row in result.fetchall():
            print(json.dumps(dict(zip(names, row)), default=str))


if __name__ == "__main__":
    main()
