"""`make smoke` (docs/smoke.md) against `make dev`, so that the post-deploy check cannot rot:
it passes once an archiver run has archived its events, and fails naming the step when none
comes in time. The local API checks no signature or token: that a deployed stack accepts
them can only be seen in AWS; here the requests are built, sent and answered."""

import importlib.util
import signal
import subprocess
from argparse import Namespace

import pytest
from botocore.credentials import Credentials

from conftest import ROOT, free_port, stack_env, start_make_dev, stop

STEPS = ("config", "health", "send", "duplicate", "archive", "compare")


@pytest.fixture(scope="module")
def dev():
    """`make dev` whose own archiver loop never runs within the tests: each test decides
    whether an archiver run happens (the schedule's part in AWS)."""
    env = dict(stack_env(), EIS_PORT=str(free_port()), EIS_ARCHIVE_EVERY="86400")
    process, url = start_make_dev(env)
    try:
        yield env, url
    finally:
        stop(process, signal.SIGINT)


def test_smoke_passes_once_an_archiver_run_archived_its_events(dev):
    env, url = dev
    # AUTH=iam: every request is signed with the local stack's (test) credentials.
    smoke = subprocess.Popen(["make", "--no-print-directory", "smoke", f"URL={url}", "AUTH=iam",
                              "WAIT=600"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
    output = []
    try:
        for line in smoke.stdout:
            output.append(line)
            if line.startswith("[smoke] archive: waiting"):
                break
        assert output and output[-1].startswith("[smoke] archive: waiting"), "".join(output)
        # The scheduled run of AWS, as a person runs it locally.
        archive = subprocess.run(["make", "--no-print-directory", "archive"], cwd=ROOT, env=env,
                                 capture_output=True, text=True, timeout=1800)
        assert archive.returncode == 0, archive.stderr
        output.append(smoke.communicate(timeout=600)[0])
    finally:
        stop(smoke)
    text = "".join(output)
    assert smoke.returncode == 0, text
    for step in STEPS:
        assert f"[smoke] {step}: " in text, text
    assert text.rstrip().endswith("[smoke] passed"), text


def test_smoke_fails_naming_the_archive_step_when_no_archiver_run_comes_in_time(dev):
    env, url = dev
    # A tiny deadline and no archiver run: the events are stored and queued, never archived.
    run = subprocess.run(["make", "--no-print-directory", "smoke", f"URL={url}", "WAIT=1"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode != 0, run.stdout
    for step in ("health", "send", "duplicate"):
        assert f"[smoke] {step}: " in run.stdout, run.stdout
    last = run.stdout.rstrip().splitlines()[-1]
    assert last.startswith("[smoke] FAILED at step archive: after 1 s, 3 of 3 events"), run.stdout
    assert "[smoke] passed" not in run.stdout


# --- Without make dev: what fails before any request, and the authorization headers --------


def run_smoke(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / ".local" / "venv" / "bin" / "python"),
                           str(ROOT / "infra" / "tools" / "smoke.py"), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_a_local_url_is_never_checked_against_the_s3_of_aws(env):
    # Nothing listens on the port: a request would fail the health step, not config.
    env = {k: v for k, v in env.items() if k != "AWS_ENDPOINT_URL"}
    run = run_smoke(env, "--url", f"http://127.0.0.1:{free_port()}", "--bucket", "events")
    assert run.returncode == 1, run.stdout
    assert "[smoke] FAILED at step config: the API (http://127.0.0.1:" in run.stdout, run.stdout


def test_a_deployed_url_is_never_checked_against_the_local_s3(env):
    # Should the check break, the request goes to a dead local proxy, never to AWS.
    dead = f"http://127.0.0.1:{free_port()}"
    env = dict(env, https_proxy=dead, HTTPS_PROXY=dead, no_proxy="", NO_PROXY="")
    run = run_smoke(env, "--url", "https://abc123.execute-api.eu-west-1.amazonaws.com",
                    "--bucket", "events")
    assert run.returncode == 1, run.stdout
    assert "[smoke] FAILED at step config: the API (https://abc123" in run.stdout, run.stdout


def test_jwt_without_a_token_fails_at_config(env):
    env = {k: v for k, v in env.items() if k != "SMOKE_TOKEN"}
    run = run_smoke(env, "--url", f"http://127.0.0.1:{free_port()}", "--auth", "jwt")
    assert run.returncode == 1, run.stdout
    assert run.stdout.rstrip().endswith(
        "[smoke] FAILED at step config: AUTH=jwt needs the bearer token in $SMOKE_TOKEN"), run.stdout


def load_smoke():
    spec = importlib.util.spec_from_file_location("smoke", ROOT / "infra" / "tools" / "smoke.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_jwt_sends_the_token_as_a_bearer(monkeypatch):
    smoke = load_smoke()
    monkeypatch.setenv("SMOKE_TOKEN", "tok.en.value")
    authorize = smoke.authorizer(Namespace(auth="jwt", token_var="SMOKE_TOKEN"))
    assert authorize("GET", "https://x/health", None, {}) == {"Authorization": "Bearer tok.en.value"}


def test_iam_signs_for_execute_api_in_the_region_of_the_url():
    smoke = load_smoke()
    url = "https://abc123.execute-api.eu-west-1.amazonaws.com/events"
    assert smoke.region_of(url) == "eu-west-1"
    assert smoke.region_of("https://events.example.com/events") is None
    credentials = Credentials("AKIDEXAMPLE", "secret", "session-token")
    headers = smoke.sigv4_headers(credentials, "eu-west-1", "POST", url, b'{"a":1}',
                                  {"Content-Type": "application/json"})
    authorization = headers["Authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"), authorization
    assert "/eu-west-1/execute-api/aws4_request" in authorization, authorization
    assert "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token" in authorization
    assert headers["X-Amz-Security-Token"] == "session-token"
