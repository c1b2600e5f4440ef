"""Helpers shared by the bench scripts: summaries of repeated runs, CPU time of processes,
free ports. Standard library only (the scripts run in .local/venv or .local/bench-venv)."""

import os
import socket
import statistics


def summary(values):
    """Median, min and max of repeated measurements, and the runs themselves."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": values,
    }


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User + system CPU time of a live process (all its threads), or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            # The command may hold spaces: fields start after the last ')'.
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK


def cluster_cpu_seconds(postmaster):
    """User + system CPU time of a PostgreSQL cluster: the postmaster and every live child
    (backends, WAL writer, autovacuum, ...), each with the times of the children it reaped,
    and the postmaster's reaped children (backends that ended, such as psql's). As
    bench/src/pg_write.rs reads it: from /proc, never from wall time."""
    ticks = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == postmaster or int(fields[1]) == postmaster:
            # utime, stime, cutime, cstime
            ticks += sum(int(v) for v in fields[11:15])
    return ticks / _TICK


def ppid(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def vm_hwm_mib(pid):
    """Peak resident set size so far (VmHWM) of a live process, in MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port, path, timeout=2.0):
    """Status code of GET http://127.0.0.1:port/path, or None when nothing answers yet."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            head = s.recv(64)
    except OSError:
        return None
    parts = head.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
