"""`make up` / `make down` from a fresh clone inside a 0700 directory, with a space in its path.

As root the private PostgreSQL cluster runs as `postgres`, which cannot enter such a directory
(root's home is one); the cluster therefore lives outside the clone (infra/lib.sh). This
test clones the committed HEAD into `mktemp -d`/"my clone", brings the stack up there, checks
that PostgreSQL and moto answer, brings it down and asserts that nothing it started still runs,
and that the stack of the clone running the test (if any) was left alone.
"""

import os
import shutil
import stat
import subprocess
import tempfile
import urllib.request
from pathlib import Path

from conftest import ROOT, VENV_BIN

# Variables of a sourced .local/env: the clone must start its own stack, not reuse this one's.
STACK_VARS = ("DATABASE_URL", "EIS_PG_CA_FILE", "AWS_ENDPOINT_URL", "EIS_QUEUE_URL",
              "EIS_DLQ_URL", "EIS_BUCKET", "EIS_API_URL", "EIS_PG_PORT", "EIS_MOTO_PORT")


def read_env(path: Path) -> dict:
    values = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            name, _, value = line[len("export "):].partition("=")
            values[name] = value.strip("'")
    return values


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def processes_mentioning(text: str) -> list:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline:
                found.append((int(entry.name), cmdline))
    return found


def postmaster_pid(pgdir: Path):
    pidfile = pgdir / "data" / "postmaster.pid"
    return int(pidfile.read_text().splitlines()[0]) if pidfile.exists() else None


def test_stack_from_a_clone_in_a_private_directory_with_a_space():
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()
    own_pgdir = (ROOT / ".local" / "pg").resolve() if (ROOT / ".local" / "pg").exists() else None
    own_postmaster = postmaster_pid(own_pgdir) if own_pgdir else None

    env = {k: v for k, v in os.environ.items() if k not in STACK_VARS}
    if own_pgdir and os.environ.get("DATABASE_URL"):
        # This clone's .local/env is sourced: the other clone must still start its own cluster.
        env["DATABASE_URL"] = os.environ["DATABASE_URL"]
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p != str(VENV_BIN))
    # The same target directory as the caller (Makefile default otherwise): no cold build.
    env.setdefault("CARGO_TARGET_DIR", str(Path.home() / ".cache" / "eis" / "target"))

    tmp = Path(tempfile.mkdtemp(prefix="eis-clone-"))
    clone = tmp / "my clone"
    started = []
    pgdir = None
    try:
        assert stat.S_IMODE(tmp.stat().st_mode) == 0o700
        subprocess.run(["git", "-c", "safe.directory=*", "clone", "--quiet", "--no-checkout",
                        str(ROOT), str(clone)], check=True, env=env)
        subprocess.run(["git", "-C", str(clone), "checkout", "--quiet", head], check=True, env=env)
        # The Python tools this clone's up.sh would install: the caller's virtualenv, linked, so
        # that the test does not spend a minute in pip (up.sh sees matching requirements).
        (clone / ".local").mkdir()
        if (VENV_BIN.parent / ".requirements").exists():
            (clone / ".local" / "venv").symlink_to(VENV_BIN.parent)

        up = subprocess.run(["make", "up"], cwd=clone, env=env, capture_output=True, text=True,
                            timeout=1800)
        assert up.returncode == 0, f"make up failed:\n{up.stdout}\n{up.stderr}"

        pgdir = (clone / ".local" / "pg").resolve()
        assert not str(pgdir).startswith(str(tmp)), "the cluster must live outside the 0700 tree"
        assert pgdir != own_pgdir, "two clones must not share a cluster"
        stack = read_env(clone / ".local" / "env")
        assert f":{(pgdir / 'port').read_text().strip()}/" in stack["DATABASE_URL"]

        started = [postmaster_pid(pgdir), int((clone / ".local" / "moto.pid").read_text())]
        assert all(started) and all(alive(p) for p in started)

        psql = subprocess.run(["psql", stack["DATABASE_URL"], "-Atqc",
                               "select count(*) from exp.events"],
                              capture_output=True, text=True, timeout=30)
        assert psql.returncode == 0 and psql.stdout.strip().isdigit(), psql.stderr
        with urllib.request.urlopen(f"{stack['AWS_ENDPOINT_URL']}/moto-api/", timeout=10) as r:
            assert r.status == 200

        down = subprocess.run(["make", "down"], cwd=clone, env=env, capture_output=True,
                              text=True, timeout=120)
        assert down.returncode == 0, f"make down failed:\n{down.stdout}\n{down.stderr}"
        assert not [p for p in started if alive(p)], "make down left processes running"
        assert not processes_mentioning(str(pgdir)), processes_mentioning(str(pgdir))
        assert not processes_mentioning(str(clone)), processes_mentioning(str(clone))
        if own_postmaster:
            assert alive(own_postmaster), "the clone's make down stopped another clone's cluster"
    finally:
        if (clone / "infra" / "local" / "down.sh").exists():
            subprocess.run([str(clone / "infra" / "local" / "down.sh"), "--purge"], cwd=clone,
                           env=env, capture_output=True, timeout=120)
        for pid in started:
            if pid and alive(pid):
                os.kill(pid, 9)
        if pgdir is not None and pgdir.exists() and pgdir != own_pgdir:
            shutil.rmtree(pgdir, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
