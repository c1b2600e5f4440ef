"""The Glue table's partition projection against the years the contract accepts and the
folders the archiver writes, read from their sources (shared/contract, functions/archiver).

An event the contract accepts is archived under YYYY/MM/DD/HH/ of its timestamp; if the
projection does not produce that folder, Athena never reads it.
"""

import re

from conftest import ROOT


def contract_years():
    src = (ROOT / "shared" / "contract" / "src" / "timestamp.rs").read_text()
    m = re.search(r"\((\d+)\.\.=(\d+)\)\s*\.contains\(&normalised\.year\(\)\)", src)
    assert m, "the contract's accepted year range moved: update this test"
    return int(m.group(1)), int(m.group(2))


def archiver_folder_format():
    src = (ROOT / "functions" / "archiver" / "src" / "archive" / "partition.rs").read_text()
    m = re.search(r'fn folder\(&self\) -> String \{\s*format!\(\s*"([^"]+)"', src)
    assert m, "the archiver's folder format moved: update this test"
    return m.group(1)


def projection(template):
    return template["Resources"]["ArchiveGlueTable"]["Properties"]["TableInput"]["Parameters"]


def test_projection_covers_every_year_the_contract_accepts(template):
    lo, hi = contract_years()
    p = projection(template)
    first, last = (int(x) for x in p["projection.year.range"].split(","))
    assert first <= lo and last >= hi, f"projection {first}..{last}, contract {lo}..{hi}"


def test_projected_year_folders_are_the_archivers(template):
    p = projection(template)
    fmt = archiver_folder_format()
    assert fmt.startswith("{:04}/"), fmt
    assert p["projection.year.digits"] == "4", "0001 and 1970 are written zero-padded to 4 digits"


def test_a_1970_event_is_projected(template):
    """The case this guards: an event dated 1970 (flagged old_timestamp, still accepted)."""
    p = projection(template)
    first, last = (int(x) for x in p["projection.year.range"].split(","))
    assert first <= 1970 <= last
