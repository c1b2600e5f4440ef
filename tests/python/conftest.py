"""Shared by the Python tests: paths, ports, processes started in their own session."""

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".local" / "venv" / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_for_port(port: int, process: subprocess.Popen, limit: float) -> None:
    deadline = time.monotonic() + limit
    while not port_open(port):
        assert process.poll() is None, f"process exited with {process.returncode}"
        assert time.monotonic() < deadline, f"nothing listens on {port} after {limit}s"
        time.sleep(0.2)


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> int:
    """Signals the process's whole session (it was started with start_new_session)."""
    if process.poll() is None:
        os.killpg(process.pid, sig)
        try:
            return process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            return process.wait()
    return process.returncode


def stack_env() -> dict:
    """The environment with the project's Python tools first on PATH (cargo-lambda)."""
    env = os.environ.copy()
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env['PATH']}"
    for name in ("DATABASE_URL", "AWS_ENDPOINT_URL", "EIS_QUEUE_URL"):
        assert env.get(name), f"{name} is not set: run through `make test`"
    return env


@pytest.fixture
def env() -> dict:
    return stack_env()


def start_make_dev(env: dict) -> tuple[subprocess.Popen, str]:
    """Starts `make dev` in a session of its own (stop it with `stop(process, SIGINT)`, as
    Ctrl-C would) and returns it with the URL of its `ready:` line. Its later output is read
    on a thread, so that a full pipe never blocks the server."""
    dev = subprocess.Popen(["make", "--no-print-directory", "dev"], cwd=ROOT, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           start_new_session=True)
    try:
        deadline = time.monotonic() + 1800
        for line in dev.stdout:
            if line.startswith("ready:"):
                threading.Thread(target=dev.stdout.read, daemon=True).start()
                return dev, line.split(None, 1)[1].strip()
            assert time.monotonic() < deadline, "no ready line"
        raise AssertionError(f"make dev exited without a ready line ({dev.wait()})")
    except BaseException:
        stop(dev, signal.SIGINT)
        raise


def write_with_example(example: str, source: Path, out: Path, now: str, *extra: str) -> Path:
    """Runs the archiver's `example` (write-sample, write-rejected-sample) on `source`, with
    `now` as the receive time (and the example's `extra` arguments); returns `out`, which it
    must have written."""
    run = subprocess.run(
        ["cargo", "run", "--quiet", "--locked", "-p", "archiver", "--example", example,
         "--", str(source), str(out), now, *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=3600, check=False,
    )
    assert run.returncode == 0, run.stderr
    assert out.is_file(), f"{example} wrote no file"
    return out
