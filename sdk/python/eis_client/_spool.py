"""The optional durable spool: every captured event is written to an SQLite file (standard
library, WAL) before capture returns, and deleted once it has a final result. A process
killed with events still queued leaves them in the file; the next Client opened on the same
file sends them with their original ids, so the server stores each once (a resend of an
event it already stored is answered as a duplicate).

Each insert is its own transaction. With WAL and synchronous=NORMAL a committed row survives
the death of the process (kill -9); an operating system crash may lose the last ones.
One file serves one Client at a time.
"""

from __future__ import annotations

import sqlite3
import threading

from ._events import Item

_SCHEMA = "CREATE TABLE IF NOT EXISTS events (event_id TEXT NOT NULL, data BLOB NOT NULL)"


class Spool:
    def __init__(self, path: str):
        # Shared by the capturing threads and the sender; the lock serialises the statements
        # (SQLite serialises writers anyway) and is never held across network I/O.
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    def load(self) -> list:
        """Every event still in the file, in capture order."""
        with self._lock:
            rows = self._db.execute("SELECT rowid, event_id, data FROM events ORDER BY rowid").fetchall()
        return [Item(event_id, bytes(data), spool_row=row) for row, event_id, data in rows]

    def add(self, item: Item) -> None:
        with self._lock:
            item.spool_row = self._db.execute("INSERT INTO events (event_id, data) VALUES (?, ?)",
                                              (item.event_id, item.data)).lastrowid

    def remove(self, items) -> None:
        rows = [(item.spool_row,) for item in items if item.spool_row is not None]
        if not rows:
            return
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("DELETE FROM events WHERE rowid = ?", rows)
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()
