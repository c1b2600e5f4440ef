"""Prepares `sam local invoke` against a local stack (the GitHub workflow .github/workflows/sam.yml).

`sam local` passes a function only the environment variables its template declares, and
`--env-vars` can only override those. This adds AWS_ENDPOINT_URL (moto) to the functions of
the *built* template (.aws-sam/build/template.yaml, never template.yaml itself) and writes the
--env-vars file that points them at the local PostgreSQL, queue and bucket, without TLS and
without Secrets Manager. Run it with the SAM CLI's Python (it uses SAM's YAML helpers).
"""

import argparse
import json
from pathlib import Path

from samcli.yamlhelper import yaml_dump, yaml_parse

FUNCTIONS = ("IngestFunction", "ArchiverFunction", "MigratorFunction")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", default=".aws-sam/build/template.yaml")
    parser.add_argument("--env-out", default=".aws-sam/local-env.json")
    parser.add_argument("--endpoint", required=True, help="moto URL, e.g. http://127.0.0.1:5000")
    parser.add_argument("--database-url", required=True, help="local PostgreSQL URL (with password)")
    parser.add_argument("--queue-url", required=True)
    parser.add_argument("--bucket", required=True)
    args = parser.parse_args()

    path = Path(args.template)
    template = yaml_parse(path.read_text(encoding="utf-8"))
    for name in FUNCTIONS:
        variables = template["Resources"][name]["Properties"]["Environment"]["Variables"]
        variables["AWS_ENDPOINT_URL"] = args.endpoint
    path.write_text(yaml_dump(template), encoding="utf-8")

    database = {
        "AWS_ENDPOINT_URL": args.endpoint,
        "DATABASE_URL": args.database_url,
        # Empty = unset for the functions: no secret lookup, no CA file (sslmode in the URL).
        "EIS_DB_SECRET_ARN": "",
        "EIS_PG_CA_FILE": "",
        "RUST_LOG": "info",
    }
    common = dict(database, EIS_QUEUE_URL=args.queue_url)
    env = {
        "IngestFunction": dict(common),
        # Without role secrets the migrator migrates as DATABASE_URL's user, as `make migrate`.
        "MigratorFunction": dict(database, EIS_DB_ADMIN_SECRET_ARN="", EIS_DB_MIGRATOR_SECRET_ARN=""),
        "ArchiverFunction": dict(common, EIS_BUCKET=args.bucket, EIS_ARCHIVE_PREFIX="",
                                 EIS_REJECTED_PREFIX="rejected/"),
    }
    Path(args.env_out).write_text(json.dumps(env, indent=2) + "\n", encoding="utf-8")
    print(f"patched {path}; wrote {args.env_out}")


if __name__ == "__main__":
    main()
