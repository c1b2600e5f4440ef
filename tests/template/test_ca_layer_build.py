"""`sam build CaBundleLayer` in a fresh clone: the layer builds itself (BuildMethod makefile,
infra/ca-layer/Makefile running infra/tools/ca-bundle.sh --into), with no infra/certs/ and no
step before it. The RDS bundle comes from a local file (EIS_RDS_CA_BUNDLE): a self-signed
stand-in for an RDS root, made here; nothing is downloaded (proxies point at 127.0.0.1, so a
stray download fails at once instead of leaving the machine).
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import ROOT
from test_ca_bundle import SCRIPT, SYSTEM_AMAZON_ROOT, self_signed

SAM = Path(sys.executable).parent / "sam"
LAYER = Path("CaBundleLayer") / "rds-global-bundle.pem"
RDS_SUBJECT = "/C=US/O=Amazon Web Services, Inc./OU=Amazon RDS/CN=Amazon RDS test-1 Root CA RSA2048 G1/L=Seattle"


@pytest.fixture(scope="module")
def clone():
    if not SAM.exists():
        pytest.skip(f"{SAM} missing: run through infra/tools/check-templates.sh (the sam venv)")
    if not SYSTEM_AMAZON_ROOT.exists():
        pytest.skip("no system copy of Amazon Root CA 1 (Debian ca-certificates)")
    tmp = Path(tempfile.mkdtemp(prefix="eis-ca-layer-"))
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], check=True,
                              capture_output=True, text=True).stdout.strip()
        subprocess.run(["git", "-c", "safe.directory=*", "clone", "--quiet", "--no-checkout",
                        str(ROOT), str(tmp / "clone")], check=True)
        subprocess.run(["git", "-C", str(tmp / "clone"), "checkout", "--quiet", head], check=True)
        yield tmp / "clone"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def sam_build(clone, tmp_path, rds_pem, *args, **env):
    rds = tmp_path / "global-bundle.pem"
    rds.write_text(rds_pem)
    offline = {"https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
               "http_proxy": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
    # EIS_CA_BUNDLE_OPTIONAL only when a test sets it (make test exports it).
    run_env = {k: v for k, v in os.environ.items() if k != "EIS_CA_BUNDLE_OPTIONAL"}
    run_env.update(offline, SAM_CLI_TELEMETRY="0", AWS_DEFAULT_REGION="us-east-1",
                   AWS_REGION="us-east-1", EIS_RDS_CA_BUNDLE=str(rds), **env)
    # The clone's own state, not a previous test's: no assembled bundle, no earlier build.
    shutil.rmtree(clone / "infra" / "certs", ignore_errors=True)
    shutil.rmtree(clone / ".aws-sam", ignore_errors=True)
    return subprocess.run([str(SAM), "build", "CaBundleLayer", *args], cwd=clone, env=run_env,
                          capture_output=True, text=True, timeout=300)


def test_a_fresh_clone_builds_the_layer_with_the_checked_bundle(clone, tmp_path):
    assert not (clone / "infra" / "certs").exists(), "the bundle is generated, not committed"
    rds_root = self_signed(tmp_path, "rds", RDS_SUBJECT)
    r = sam_build(clone, tmp_path, rds_root)
    assert r.returncode == 0, r.stdout + r.stderr
    built = clone / ".aws-sam" / "build" / LAYER
    assert built.is_file(), f"{built} missing:\n{r.stdout}{r.stderr}"
    text = built.read_text()
    assert rds_root.strip() in text
    assert SYSTEM_AMAZON_ROOT.read_text().strip() in text
    check = subprocess.run([str(SCRIPT), "--check", str(built)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    # The built template names the built layer, which sam deploy packages.
    assert "CaBundleLayer" in (clone / ".aws-sam" / "build" / "template.yaml").read_text()


def test_an_incomplete_bundle_fails_the_build_naming_what_is_missing(clone, tmp_path):
    other = self_signed(tmp_path, "other", "/CN=localhost")
    r = sam_build(clone, tmp_path, other)
    assert r.returncode != 0
    assert "Amazon RDS root CA" in r.stdout + r.stderr
    assert not (clone / ".aws-sam" / "build" / LAYER).exists()


def test_optional_builds_an_incomplete_layer_only_where_deploy_never_reads(clone, tmp_path):
    other = self_signed(tmp_path, "other", "/CN=localhost")
    refused = sam_build(clone, tmp_path, other, EIS_CA_BUNDLE_OPTIONAL="1")
    assert refused.returncode != 0, "an incomplete layer must not land in .aws-sam/build"
    assert "build-incomplete-ca" in refused.stdout + refused.stderr
    r = sam_build(clone, tmp_path, other, "--build-dir", ".aws-sam/build-incomplete-ca",
                  EIS_CA_BUNDLE_OPTIONAL="1")
    assert r.returncode == 0, r.stdout + r.stderr
    built = clone / ".aws-sam" / "build-incomplete-ca" / LAYER
    assert built.read_text().strip() == SYSTEM_AMAZON_ROOT.read_text().strip()
