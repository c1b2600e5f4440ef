#!/usr/bin/env python3
"""Writes samconfig.local.toml, the deployer's own SAM configuration (git-ignored): a copy of
samconfig.toml whose environment ENV also holds the database's parameters.

    infra/tools/samconfig-local.py ENV "$overrides"      # ENV: default or prod

`sam deploy --guided --config-file samconfig.local.toml [--config-env prod]` then asks every
parameter with these as its answers and saves the account-specific ones there, never in the
committed file. The committed overrides of ENV (prod's ObjectLock, retention, ...) are kept:
passing the database's on the command line instead (`--parameter-overrides`) would replace
them silently, because SAM takes an option from the configuration only when the command line
does not give it. A parameter given in OVERRIDES wins over the committed one of the same name.
"""

import json
import shlex
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "samconfig.toml"
LOCAL = ROOT / "samconfig.local.toml"


def parse(overrides: str) -> dict[str, str]:
    """`Key=Value Key2="Value 2"` (SAM's and describe-stacks' form) into an ordered dict."""
    pairs = {}
    for token in shlex.split(overrides):
        key, sep, value = token.partition("=")
        if not sep or not key.isidentifier():
            sys.exit(f"samconfig-local: {token!r} is not Key=Value")
        pairs[key] = value
    return pairs


def render(pairs: dict[str, str]) -> str:
    # A TOML basic string of SAM's `Key="Value"` list; JSON escaping is valid TOML here.
    return json.dumps(" ".join(f"{k}={json.dumps(v)}" for k, v in pairs.items()))


def local_config(committed: str, env: str, overrides: str) -> str:
    """committed's text with env's deploy parameter_overrides merged with `overrides`."""
    config = tomllib.loads(committed)
    params = config.get(env, {}).get("deploy", {}).get("parameters")
    if params is None:
        sys.exit(f"samconfig-local: samconfig.toml has no [{env}.deploy.parameters]")
    merged = {**parse(params.get("parameter_overrides", "")), **parse(overrides)}
    line = f"parameter_overrides = {render(merged)}\n"
    section = f"[{env}.deploy.parameters]"
    out, in_section, written = [], False, False
    for text in committed.splitlines(keepends=True):
        if text.startswith("["):
            if in_section and not written:
                out.append(line)
                written = True
            in_section = text.strip() == section
        if in_section and text.startswith("parameter_overrides"):
            text, written = line, True
        out.append(text)
    if in_section and not written:
        out.append(line)
    result = "".join(out)
    if parse(tomllib.loads(result)[env]["deploy"]["parameters"]["parameter_overrides"]) != merged:
        sys.exit("samconfig-local: could not write the overrides")
    return result


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    env, overrides = sys.argv[1], sys.argv[2]
    if LOCAL.exists():
        sys.exit(f"samconfig-local: {LOCAL.name} exists and holds your saved answers; deploy with "
                 f"`sam deploy --config-file {LOCAL.name}` (remove it to start again)")
    LOCAL.write_text(local_config(COMMITTED.read_text(), env, overrides))
    print(f"wrote {LOCAL.name}: environment {env!r}, parameter_overrides "
          f"{tomllib.loads(LOCAL.read_text())[env]['deploy']['parameters']['parameter_overrides']}")


if __name__ == "__main__":
    main()
