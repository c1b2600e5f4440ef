"""The Python SDK (sdk/python, `eis_client`) against the real local stack, under the faults it
exists for: PostgreSQL frozen, the ingest process killed, invalid events, no server at all, the
client's own process killed, a client clock that is wrong.

Each test starts its own ingest process on a free port (stopped by pid) on a database, queue
and bucket of this module's own, so that the shared database and archive never hold these
events; rows are counted by event_id in exp.events with psql. No fake server: every fault is
produced on the real processes.
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from conftest import ROOT, VENV_BIN, free_port, stack_env, stop, wait_for_port
from eis_client import DUPLICATE, REJECTED, STORED, Client, QueueFull

# The Makefile's default when run outside make, so that both build into the same place.
TARGET_DIR = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache" / "eis" / "target"))
PLAN = json.loads((ROOT / "events" / "plan_generated.json").read_text())


def psql(url: str, sql: str) -> str:
    run = subprocess.run(["psql", url, "-X", "-Atq", "-v", "ON_ERROR_STOP=1", "-c", sql],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"{sql}\n{run.stderr}"
    return run.stdout


def cargo_build(env: dict, binary: str) -> Path:
    # One binary per cargo command, as bench/run.sh does: no feature unification between them.
    run = subprocess.run(["cargo", "build", "--quiet", "--locked", "--bin", binary], cwd=ROOT,
                         env=dict(env, CARGO_TARGET_DIR=str(TARGET_DIR)), capture_output=True,
                         text=True, timeout=3600)
    assert run.returncode == 0, run.stderr
    return TARGET_DIR / "debug" / binary


@pytest.fixture(scope="module")
def stack() -> dict:
    """The environment of an ingest process whose database (migrated by the migrator binary),
    queue and bucket are this module's own, and removed afterwards."""
    env = stack_env()
    ingest, migrator = cargo_build(env, "ingest"), cargo_build(env, "migrator")
    name = f"eis-sdk-{uuid.uuid4().hex[:10]}"
    database = name.replace("-", "_")
    admin = env["DATABASE_URL"]
    url = urlunsplit(urlsplit(admin)._replace(path=f"/{database}"))
    resources = [str(VENV_BIN / "python"), str(ROOT / "infra" / "local" / "resources.py"),
                 "--queue", name, "--bucket", name]
    psql(admin, f"CREATE DATABASE {database}")
    try:
        migrate = subprocess.run([str(migrator)], env=dict(env, DATABASE_URL=url),
                                 capture_output=True, text=True, timeout=300)
        assert migrate.returncode == 0, migrate.stderr
        created = subprocess.run(resources, env=env, capture_output=True, text=True, check=True)
        yield dict(env, DATABASE_URL=url, EIS_QUEUE_URL=created.stdout.split()[0],
                   EIS_BUCKET=name, EIS_INGEST_BINARY=str(ingest))
    finally:
        psql(admin, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        subprocess.run(resources + ["--remove"], env=env, capture_output=True)


class Ingest:
    """One ingest process on 127.0.0.1, in a session of its own; its log (one JSON line per
    request) goes to a file, which tells how many requests it served."""

    def __init__(self, env: dict, log: Path):
        self.env = env
        self.log = log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [self.env["EIS_INGEST_BINARY"]], env=dict(self.env, EIS_PORT=str(self.port)),
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_port(self.port, self.process, 60)

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def batch_requests(self) -> int:
        """The request log's lines for POST /events/batch (its metric lines name the route too)."""
        lines = [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")]
        return sum(line.get("fields", {}).get("message") == "request"
                   and line["fields"].get("route") == "POST /events/batch" for line in lines)


@pytest.fixture
def ingest(stack, tmp_path):
    server = Ingest(stack, tmp_path / "ingest.log")
    server.start()
    try:
        yield server
    finally:
        stop(server.process)


def plan_event(unit_id: str, n: int) -> dict:
    """The canonical event (events/plan_generated.json) for `unit_id`, without event_id and
    timestamp: the SDK sets them."""
    event = {k: v for k, v in PLAN.items() if k not in ("event_id", "timestamp")}
    return dict(event, unit_id=unit_id, payload=dict(PLAN["payload"], plan_id=f"pln_{n}"))


def stored(env: dict, unit_id: str) -> dict:
    """event_id -> number of rows in exp.events, for the events of `unit_id`."""
    out = psql(env["DATABASE_URL"], "SELECT event_id, count(*) FROM exp.events "
               f"WHERE unit_id = '{unit_id}' GROUP BY event_id")
    return {line.split("|")[0]: int(line.split("|")[1]) for line in out.split()}


def delivered_once(report, ids: list) -> None:
    assert report.pending == 0, report.pending_ids[:5]
    statuses = {r.event_id: r.status for r in report.results}
    assert set(statuses) == set(ids)
    assert set(statuses.values()) <= {STORED, DUPLICATE}, [r for r in report.results if not r.delivered][:3]


class Pacer:
    """Captures at a steady rate, recording the slowest capture() call."""

    def __init__(self, client: Client):
        self.client = client
        self.ids = []
        self.slowest = 0.0

    def capture(self, unit_id: str, count: int, seconds: float, during=None) -> None:
        start = time.monotonic()
        for i in range(count):
            if during is not None:
                during(i)
            began = time.perf_counter()
            self.ids.append(self.client.capture(plan_event(unit_id, len(self.ids))))
            self.slowest = max(self.slowest, time.perf_counter() - began)
            delay = start + (i + 1) * seconds / count - time.monotonic()
            if delay > 0:
                time.sleep(delay)


@contextmanager
def postgres_frozen(env: dict):
    """SIGSTOP to the private cluster's postmaster and then its children (ps --ppid): the
    postmaster first, so that it starts no new backend meanwhile. SIGCONT to all, always."""
    pg = ROOT / ".local" / "pg"
    port = (pg / "port").read_text().strip() if (pg / "port").exists() else None
    if port is None or f"127.0.0.1:{port}/" not in env["DATABASE_URL"]:
        pytest.skip("DATABASE_URL is not the private cluster of infra/local/up.sh")
    postmaster = int((pg / "data" / "postmaster.pid").read_text().splitlines()[0])
    frozen = []
    try:
        os.kill(postmaster, signal.SIGSTOP)
        frozen.append(postmaster)
        children = subprocess.run(["ps", "--ppid", str(postmaster), "-o", "pid="],
                                  capture_output=True, text=True, check=True).stdout.split()
        for pid in map(int, children):
            os.kill(pid, signal.SIGSTOP)
            frozen.append(pid)
        yield
    finally:
        for pid in reversed(frozen):
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass


def test_postgres_frozen_while_5000_events_are_captured(stack, ingest):
    pause = 6.0
    unit = f"sdk-frozen-{uuid.uuid4()}"
    # Requests time out during the pause and are sent again; those that reached the server
    # are stored after it, so the retries are answered as duplicates.
    client = Client(ingest.url, request_timeout=2, max_retry_after=1)
    pacer = Pacer(client)
    try:
        pacer.capture(unit, 500, 1.0)
        with postgres_frozen(stack):
            pacer.capture(unit, 4000, pause)
        pacer.capture(unit, 500, 1.0)
        report = client.flush(timeout=180)
    finally:
        client.close(timeout=5)
    delivered_once(report, pacer.ids)
    assert stored(stack, unit) == dict.fromkeys(pacer.ids, 1)
    assert client.stats.retries > 0
    # capture() never waited on the frozen database: far below the pause.
    assert pacer.slowest < pause / 20, pacer.slowest


def test_ingest_killed_and_restarted_mid_stream(stack, ingest):
    unit = f"sdk-killed-{uuid.uuid4()}"
    client = Client(ingest.url, flush_at=50, flush_interval=0.05, max_retry_after=0.5)
    pacer = Pacer(client)

    def fault(i):
        if i == 1000:
            ingest.kill()
        elif i == 1500:
            ingest.start()

    try:
        pacer.capture(unit, 3000, 3.0, during=fault)
        report = client.flush(timeout=120)
    finally:
        client.close(timeout=5)
    delivered_once(report, pacer.ids)
    assert stored(stack, unit) == dict.fromkeys(pacer.ids, 1)
    assert client.stats.retries > 0


def test_invalid_events_are_reported_with_code_and_field_and_never_resent(stack, ingest):
    unit = f"sdk-invalid-{uuid.uuid4()}"
    bad_variant = plan_event(unit, 1)
    bad_variant["experiments"] = [dict(PLAN["experiments"][0], variant_id="not-a-uuid")]
    events = [plan_event(unit, 0), bad_variant, plan_event(unit, 2),
              dict(plan_event(unit, 3), unit_type="User"), plan_event(unit, 4)]
    client = Client(ingest.url, flush_at=len(events))
    try:
        ids = [client.capture(event) for event in events]
        report = client.flush(timeout=30)
    finally:
        client.close(timeout=5)
    results = {r.event_id: r for r in report.results}
    assert (results[ids[1]].status, results[ids[1]].code, results[ids[1]].field) == \
        (REJECTED, "invalid_variant_id", "/experiments/0/variant_id")
    assert (results[ids[3]].status, results[ids[3]].code, results[ids[3]].field) == \
        (REJECTED, "invalid_unit_type", "/unit_type")
    assert stored(stack, unit) == {ids[0]: 1, ids[2]: 1, ids[4]: 1}
    assert client.stats.retries == 0
    deadline = time.monotonic() + 5
    while ingest.batch_requests() < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ingest.batch_requests() == 1


def test_server_unreachable_flush_returns_in_time_and_a_full_queue_refuses():
    unit = f"sdk-down-{uuid.uuid4()}"
    refusals = []
    client = Client(f"http://127.0.0.1:{free_port()}", max_queue_events=500,
                    on_refusal=refusals.append)
    try:
        ids = [client.capture(plan_event(unit, n)) for n in range(500)]
        started = time.monotonic()
        report = client.flush(timeout=2)
        assert time.monotonic() - started < 2.5
        assert report.pending == 500 and set(report.pending_ids) == set(ids)
        started = time.monotonic()
        with pytest.raises(QueueFull):
            client.capture(plan_event(unit, 500))
        assert time.monotonic() - started < 0.5
        assert client.stats.refused == 1 and len(refusals) == 1
    finally:
        client.close(timeout=0.5)


# Captures 1 000 events into a spool while its server is unreachable, prints their ids, then
# waits to be killed.
SPOOLING_CHILD = """
import sys
from eis_client import Client
url, spool, unit = sys.argv[1:4]
client = Client(url, spool=spool, flush_at=1000, flush_interval=3600)
for n in range(1000):
    print(client.capture({"event_type": "pantry_updated", "unit_type": "user", "unit_id": unit,
                          "payload": {"n": n}}))
print("captured", flush=True)
sys.stdin.read()
"""


def test_spooled_events_survive_kill_9_and_are_sent_by_the_next_client(stack, ingest, tmp_path):
    unit = f"sdk-spool-{uuid.uuid4()}"
    spool = str(tmp_path / "spool.db")
    child = subprocess.Popen([sys.executable, "-c", SPOOLING_CHILD, f"http://127.0.0.1:{free_port()}",
                              spool, unit], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             start_new_session=True)
    try:
        ids = []
        for line in child.stdout:
            if line.strip() == "captured":
                break
            ids.append(line.strip())
        assert len(ids) == 1000, child.poll()
    finally:
        stop(child, signal.SIGKILL)
    assert child.returncode == -signal.SIGKILL
    assert stored(stack, unit) == {}

    client = Client(ingest.url, spool=spool)
    try:
        report = client.flush(timeout=60)
    finally:
        client.close(timeout=5)
    delivered_once(report, ids)
    assert [r.event_id for r in report.results] == ids
    assert stored(stack, unit) == dict.fromkeys(ids, 1)
    with sqlite3.connect(spool) as db:
        assert db.execute("SELECT count(*) FROM events").fetchone() == (0,)


def test_a_clock_90_s_behind_is_corrected_and_a_resend_is_a_duplicate(stack, ingest):
    unit = f"sdk-skew-{uuid.uuid4()}"
    client = Client(ingest.url, clock=lambda: time.time() - 90)
    try:
        ids = [client.capture({"event_type": "pantry_updated", "unit_type": "user",
                               "unit_id": unit, "payload": {"n": n}}) for n in range(20)]
        report = client.flush(timeout=30)
    finally:
        client.close(timeout=5)
    assert report.counts == {STORED: 20}
    rows = psql(stack["DATABASE_URL"], f"""
        SELECT event_id, payload->>'n',
               to_char("timestamp" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
               extract(epoch FROM received_at - sent_at),
               extract(epoch FROM adjusted_timestamp - "timestamp"),
               extract(epoch FROM received_at - adjusted_timestamp)
        FROM exp.events WHERE unit_id = '{unit}'""").split()
    assert len(rows) == 20
    resend = []
    for row in rows:
        event_id, n, timestamp, skew, correction, age = row.split("|")
        # sent_at is the client's clock when it sent: 90 s behind the server's receive time.
        assert 90 <= float(skew) < 95, row
        # The derived timestamp: timestamp + (received_at - sent_at), i.e. the real time of
        # the capture, shortly before the server received it.
        assert float(correction) == float(skew), row
        assert 0 <= float(age) < 5, row
        resend.append({"event_id": event_id, "event_type": "pantry_updated", "unit_type": "user",
                       "unit_id": unit, "payload": {"n": int(n)}, "timestamp": timestamp})
    # The same events again, with a new EIS-Sent-At: the same content, so duplicates.
    again = Client(ingest.url)
    try:
        results = again.send(resend, timeout=30)
    finally:
        again.close(timeout=5)
    assert [r.status for r in results] == [DUPLICATE] * 20
    assert stored(stack, unit) == dict.fromkeys(ids, 1)
