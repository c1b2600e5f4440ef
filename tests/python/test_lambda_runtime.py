"""The built functions under the real Lambda runtime path: `cargo lambda watch` serves every
function (the function name is the binary name), `cargo lambda invoke --data-file` sends the
same `events/` fixtures that `sam local invoke` uses."""

import json
import subprocess
import urllib.request
from datetime import datetime, timezone

from conftest import ROOT, free_port, stop, wait_for_port


def invoke(env: dict, port: int, function: str, fixture: str) -> dict:
    out = subprocess.run(
        ["cargo", "lambda", "invoke", function, "-A", "127.0.0.1", "-P", str(port),
         "--data-file", f"events/{fixture}", "--output-format", "json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_ingest_and_migrator_run_under_cargo_lambda_watch(env, tmp_path):
    # Build first, so that the watch starts the binaries instead of compiling them.
    subprocess.run(["cargo", "build", "--locked", "--bins"],
                   cwd=ROOT, env=env, check=True, timeout=3600)
    port = free_port()
    log = open(tmp_path / "watch.log", "w")
    watch = subprocess.Popen(
        ["cargo", "lambda", "watch", "--ignore-changes", "-A", "127.0.0.1", "-P", str(port),
         "--env-file", str(ROOT / ".local" / "env")],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        wait_for_port(port, watch, 120)
        answer = invoke(env, port, "ingest", "ingest-post-event.json")
        assert answer["statusCode"] == 202, answer
        body = json.loads(answer["body"])
        assert body["event_id"] == "0193f1a2-7c3e-7a10-8b2c-3d4e5f6a7b01"

        answer = invoke(env, port, "ingest", "ingest-post-batch-partial.json")
        assert answer["statusCode"] == 207, answer
        errors = json.loads(answer["body"])["errors"]
        assert [(e["index"], e["error"]) for e in errors] == [
            (5, "missing_timestamp"), (12, "invalid_experiment_id")]

        # Plain HTTP through the same watch (its function-URL emulation).
        # On the plan of infra/local/plan.json too, should `make plan` have loaded it here.
        event = {"event_type": "pantry_updated", "unit_type": "user", "unit_id": "u-watch",
                 "timestamp": datetime.now(timezone.utc).isoformat(),
                 "payload": {"items_added": 1, "items_removed": 0}}
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/lambda-url/ingest/events",
            data=json.dumps(event).encode(), method="POST",
            headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.status == 202
            assert json.loads(response.read())["warnings"] == ["no_experiment_context"]

        # The migrator through the same watch: the migrate input.
        answer = invoke(env, port, "migrator", "migrator-migrate.json")
        assert "applied" in json.dumps(answer), answer
    finally:
        stop(watch)
        log.close()
    assert watch.poll() is not None
