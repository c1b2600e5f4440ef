"""The durable spool: rows survive the Spool object (and the process), come back in capture
order with their ids, and are removed once final; a new Client adopts them."""

from eis_client import Client
from eis_client._events import Item
from eis_client._spool import Spool

from .recorder import Recorder, closed_port


def test_roundtrip_in_order_and_removal(tmp_path):
    path = str(tmp_path / "spool.db")
    spool = Spool(path)
    items = [Item(f"id-{n}", b'{"n":%d}' % n) for n in range(5)]
    for item in items:
        spool.add(item)
    spool.remove([items[1], items[3]])
    spool.close()

    again = Spool(path)
    loaded = again.load()
    assert [(i.event_id, i.data) for i in loaded] == [(f"id-{n}", b'{"n":%d}' % n) for n in (0, 2, 4)]
    again.remove(loaded)
    assert again.load() == []
    again.close()


def test_a_new_client_sends_the_spooled_events_with_their_ids(tmp_path):
    path = str(tmp_path / "spool.db")
    down = f"http://127.0.0.1:{closed_port()}"
    first = Client(down, spool=path, flush_interval=3600, flush_at=1000)
    ids = [first.capture({"event_type": "t", "unit_type": "user", "unit_id": f"u{n}"}) for n in range(20)]
    # The server is down: close gives up waiting, and the events stay in the spool.
    assert list(first.close(timeout=0.2).pending_ids) == ids

    with Recorder() as server:
        second = Client(server.url, spool=path, flush_interval=3600, flush_at=1000)
        report = second.flush(timeout=5)
        second.close(timeout=1)
    assert [r.event_id for r in report.results] == ids
    assert [e["event_id"] for _, _, body in server.requests for e in body["events"]] == ids
    assert second.stats.captured == 0 and second.stats.delivered == 20
    assert Spool(path).load() == []
