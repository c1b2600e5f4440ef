"""`make dev`, the README's main command: serves the API, prints `ready:`, runs the archiver and
the health job on their cadence stand-in, stops on Ctrl-C."""

import json
import signal
import subprocess
import time
import urllib.request
import uuid
from datetime import datetime, timezone

from conftest import ROOT, free_port, port_open, start_make_dev, stop


def assigned(env, experiment):
    """Units exp.assignments holds for `experiment` in make dev's database."""
    out = subprocess.run(["psql", env["DATABASE_URL"], "-Atqc",
                          f"SELECT count(*) FROM exp.assignments WHERE experiment_id = '{experiment}'"],
                         capture_output=True, text=True, check=True).stdout
    return int(out.strip())


def test_make_dev_serves_the_api_runs_the_jobs_and_stops_on_ctrl_c(env):
    port = free_port()
    # The cadence stand-in every 2 s, and no lag: the health job counts the event at once.
    env = dict(env, EIS_PORT=str(port), EIS_ARCHIVE_EVERY="2", EIS_HEALTH_LAG_SECS="0")
    experiment = str(uuid.uuid4())
    dev, ready = start_make_dev(env)
    try:
        assert ready == f"http://127.0.0.1:{port}", ready
        assert f"EIS_API_URL='{ready}'" in (ROOT / ".local" / "env").read_text()

        event = {"event_type": "pantry_updated", "unit_type": "user", "unit_id": "u-dev",
                 "timestamp": datetime.now(timezone.utc).isoformat(),
                 "experiments": [{"experiment_id": experiment, "variant_id": str(uuid.uuid4())}],
                 "payload": {"items_added": 5, "items_removed": 2}}
        request = urllib.request.Request(f"{ready}/events", data=json.dumps(event).encode(),
                                         method="POST", headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 202
            assert json.loads(response.read())["status"] == "accepted"
        # The health job of make dev's loop assigns the unit to its variant.
        deadline = time.monotonic() + 120
        while assigned(env, experiment) != 1:
            assert time.monotonic() < deadline, "the health job did not count the event"
            time.sleep(1)
    finally:
        # Ctrl-C reaches the terminal's whole process group: make, the script, the API.
        stop(dev, signal.SIGINT)
    deadline = time.monotonic() + 30
    while subprocess.run(["pgrep", "-s", str(dev.pid)], capture_output=True).returncode == 0:
        assert time.monotonic() < deadline, "processes of make dev outlive Ctrl-C"
        time.sleep(0.2)
    assert not port_open(port), "the API still listens after Ctrl-C"
    assert "EIS_API_URL" not in (ROOT / ".local" / "env").read_text()
