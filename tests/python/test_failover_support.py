"""What the broker does for clients that fail over (issue 3), seen on raw
sockets: duplicate detection of resent messages by producer id and sequence,
queue browsing, and the cluster URIs it advertises.
"""

from __future__ import annotations

import os
import signal

from conftest import unique, wait_until


def connected(raw_factory, broker, headers=None):
    raw = raw_factory(broker)
    raw.connect("1.2", headers=headers)
    return raw


def send(raw, queue, body, producer=None, seq=None, receipt="r", persistent=True):
    headers = {"destination": queue, "receipt": receipt}
    if persistent:
        headers["persistent"] = "true"
    if producer is not None:
        headers["hawser-producer"] = producer
        headers["hawser-seq"] = str(seq)
    raw.send_frame("SEND", headers, body.encode())
    raw.expect_receipt(receipt)


def drain(raw, queue, expect_at_least=0, settle=0.5):
    raw.send_frame("SUBSCRIBE", {"destination": queue, "id": "d", "ack": "auto", "receipt": "sub"})
    raw.expect_receipt("sub")
    return [f for f in raw.frames_for(settle) if f.command == "MESSAGE"]


def test_resent_message_is_confirmed_but_stored_once_even_across_restart(broker, raw_factory):
    # Producer ids belong to the client id that uses them: a failover client
    # reconnects with the same one, and its resends are recognised.
    q = "/queue/" + unique("dedup")
    app = {"client-id": unique("app")}
    p = connected(raw_factory, broker, app)
    send(p, q, "one", "prod-1", 1, "a")
    send(p, q, "two", "prod-1", 2, "b")
    send(p, q, "one again", "prod-1", 1, "c")      # a resend after a lost receipt
    send(p, q, "other", "prod-2", 1, "d")          # another producer's own numbering
    p.close()
    broker.kill()
    broker.start()
    p = connected(raw_factory, broker, app)
    send(p, q, "two again", "prod-1", 2, "e")      # the window survived the crash
    send(p, q, "three", "prod-1", 3, "f")
    c = connected(raw_factory, broker)
    bodies = [m.body.decode() for m in drain(c, q)]
    assert bodies == ["one", "two", "other", "three"]


def test_connections_without_client_id_do_not_share_producer_ids(broker, raw_factory):
    # Without a client id a connection is its own identity: another connection
    # using the same producer id and sequence is another producer, so it can
    # neither silence nor be silenced by it.
    q = "/queue/" + unique("anon")
    a = connected(raw_factory, broker)
    send(a, q, "from a", "shared", 1, "a")
    b = connected(raw_factory, broker)
    send(b, q, "from b", "shared", 1, "b")
    send(a, q, "a again", "shared", 1, "a2")        # a's own resend is recognised
    c = connected(raw_factory, broker)
    assert [m.body.decode() for m in drain(c, q)] == ["from a", "from b"]


def test_messages_without_producer_headers_are_never_deduplicated(broker, raw_factory):
    q = "/queue/" + unique("plain")
    p = connected(raw_factory, broker)
    send(p, q, "same", receipt="a")
    send(p, q, "same", receipt="b")
    c = connected(raw_factory, broker)
    assert [m.body.decode() for m in drain(c, q)] == ["same", "same"]


def test_bad_producer_headers_are_refused(broker, raw_factory):
    p = connected(raw_factory, broker)
    p.send_frame("SEND", {"destination": "/queue/x", "hawser-producer": "p", "hawser-seq": "soon"}, b"x")
    err = p.expect_error_and_close()
    assert "hawser-seq" in err.header("message")


def test_browse_shows_waiting_messages_without_consuming_them(broker, raw_factory):
    q = "/queue/" + unique("browse")
    p = connected(raw_factory, broker)
    for i in range(3):
        send(p, q, f"m{i}", receipt=f"r{i}")
    b = connected(raw_factory, broker)
    b.send_frame("SUBSCRIBE", {"destination": q, "id": "b", "browser": "true"})
    frames = [b.expect("MESSAGE") for _ in range(4)]
    assert [f.body.decode() for f in frames[:3]] == ["m0", "m1", "m2"]
    assert frames[3].header("browser") == "end" and frames[3].header("subscription") == "b"
    b.send_frame("UNSUBSCRIBE", {"id": "b", "receipt": "u"})
    b.expect_receipt("u")
    # Still all there for a consumer.
    c = connected(raw_factory, broker)
    assert [m.body.decode() for m in drain(c, q)] == ["m0", "m1", "m2"]


def test_cluster_uris_on_connect_and_on_change(broker_factory, raw_factory, tmp_path):
    config = tmp_path / "hawser.toml"
    config.write_text('[cluster]\nadvertise = ["tcp://127.0.0.1:1111", "tcp://127.0.0.1:2222"]\n')
    broker = broker_factory("--config", str(config))
    plain = connected(raw_factory, broker)
    watcher = raw_factory(broker)
    connected_frame = watcher.connect("1.2", headers={"hawser-cluster-updates": "true"})
    assert connected_frame.header("hawser-cluster") == "tcp://127.0.0.1:1111,tcp://127.0.0.1:2222"

    config.write_text('[cluster]\nadvertise = ["tcp://127.0.0.1:3333"]\n')
    os.kill(broker.pid, signal.SIGHUP)
    update = watcher.expect("MESSAGE", timeout=5)
    assert update.header("subscription") == "hawser-cluster"
    assert update.header("hawser-cluster") == "tcp://127.0.0.1:3333"
    # A client that did not ask gets nothing unexpected.
    assert [f for f in plain.frames_for(0.3) if f.command == "MESSAGE"] == []
    # New connections see the new list.
    again = raw_factory(broker)
    assert again.connect("1.2").header("hawser-cluster") == "tcp://127.0.0.1:3333"


def test_invalid_advertised_uri_stops_the_start(broker_factory):
    broker = broker_factory("--advertise", "not-a-uri", start=False)
    try:
        broker.start()
    except BaseException:
        pass
    assert wait_until(lambda: not broker.running, timeout=5)
    assert "not-a-uri" in broker.log_text()
