"""The CA layer's bundle check (infra/tools/ca-bundle.sh), run on bundles made for the test.

verify-full needs the RDS roots for direct connections and Amazon Root CA 1 through RDS Proxy;
the check must refuse a bundle missing either, and sam-build.sh must run it before the build
and on the built layer.
"""

import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, load_cfn

SCRIPT = ROOT / "infra" / "tools" / "ca-bundle.sh"
SYSTEM_AMAZON_ROOT = Path("/usr/share/ca-certificates/mozilla/Amazon_Root_CA_1.crt")


def self_signed(tmp_path, name, subject):
    out = tmp_path / f"{name}.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", subject, "-keyout", str(tmp_path / f"{name}.key"), "-out", str(out)],
                   check=True, capture_output=True)
    return out.read_text()


@pytest.fixture()
def pems(tmp_path):
    if not SYSTEM_AMAZON_ROOT.exists():
        pytest.skip("no system copy of Amazon Root CA 1 (Debian ca-certificates)")
    return {
        "amazon_root": SYSTEM_AMAZON_ROOT.read_text(),
        # Stand-in for an RDS root: the same naming, self-signed (the real bundle is not in the repo).
        "rds_root": self_signed(tmp_path, "rds", "/C=US/O=Amazon Web Services, Inc./OU=Amazon RDS"
                                "/CN=Amazon RDS test-1 Root CA RSA2048 G1/L=Seattle"),
        "impostor": self_signed(tmp_path, "impostor", "/C=US/O=Amazon/CN=Amazon Root CA 1"),
        "other": self_signed(tmp_path, "other", "/CN=localhost"),
    }


def check(tmp_path, *parts):
    bundle = tmp_path / "bundle.pem"
    bundle.write_text("".join(parts))
    return subprocess.run([str(SCRIPT), "--check", str(bundle)], capture_output=True, text=True)


def test_complete_bundle_passes(tmp_path, pems):
    r = check(tmp_path, pems["rds_root"], pems["other"], pems["amazon_root"])
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("parts,missing", [
    (["rds_root"], "Amazon Root CA 1"),                  # the RDS bundle alone (today's docs)
    (["rds_root", "impostor"], "Amazon Root CA 1"),      # same name, other key
    (["amazon_root"], "Amazon RDS root CA"),
    (["other"], "Amazon RDS root CA"),
    ([], "missing or empty"),
])
def test_incomplete_bundle_fails_naming_what_is_missing(tmp_path, pems, parts, missing):
    r = check(tmp_path, *[pems[p] for p in parts])
    assert r.returncode != 0
    assert missing in r.stderr


def test_sam_build_checks_the_bundle_before_and_after(root):
    script = (root / "infra" / "tools" / "sam-build.sh").read_text()
    before, _, after = script.partition('sam build --build-dir "$BUILD_DIR"')
    assert after, "sam build runs into $BUILD_DIR"
    assert "infra/tools/ca-bundle.sh" in before and "die " in before
    assert 'ca-bundle.sh --check "$BUILD_DIR/CaBundleLayer/rds-global-bundle.pem"' in after


def test_layer_ships_the_checked_file(template):
    layer = template["Resources"]["CaBundleLayer"]["Properties"]
    assert layer["ContentUri"].rstrip("/") == "infra/ca-layer"
    # Built by sam build itself (test_ca_layer_build.py builds it from a fresh clone).
    assert template["Resources"]["CaBundleLayer"]["Metadata"]["BuildMethod"] == "makefile"
    assert "ca-bundle.sh\" --into \"$(ARTIFACTS_DIR)\"" in (ROOT / "infra/ca-layer/Makefile").read_text()
    for fn in ("IngestFunction", "ArchiverFunction"):
        env = template["Resources"][fn]["Properties"]["Environment"]["Variables"]
        assert env["EIS_PG_CA_FILE"] == "/opt/rds-global-bundle.pem"


def test_bundle_is_not_committed(root):
    ignored = subprocess.run(["git", "-C", str(root), "check-ignore", "-q",
                              "infra/certs/rds-global-bundle.pem"])
    assert ignored.returncode == 0, "the assembled bundle is generated, not committed"
