"""docs/architecture.md names the module of each step: every file it names must exist, so the
picture cannot silently fall behind a rename."""

import re

from conftest import ROOT


def test_every_file_the_architecture_names_exists():
    text = (ROOT / "docs" / "architecture.md").read_text()
    names = set(re.findall(r"\b([a-z_]+\.(?:rs|py))\b", text))
    assert len(names) > 10, names
    sources = {p.name for d in ("functions", "shared", "infra") for p in (ROOT / d).rglob("*")
               if p.suffix in (".rs", ".py")}
    missing = sorted(names - sources)
    assert not missing, f"named in docs/architecture.md but absent: {missing}"
    for path in re.findall(r"`((?:shared|functions|infra)/[\w/-]+)`", text):
        assert (ROOT / path).exists(), path
