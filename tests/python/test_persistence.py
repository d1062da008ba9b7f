"""Persistence and shutdown: what survives SIGTERM and SIGKILL, what does not,
and that graceful stops exit 0."""

import signal
import subprocess
import time

import pytest

from conftest import HAWSER_BIN, TEST_TIMEOUT_ARGS, encode_frame, free_port, unique, wait_until


def pipeline_send(raw, q, bodies, persistent=True, prefix="r"):
    """Sends every body with a receipt in one write and waits for all receipts."""
    data = b"".join(
        encode_frame("SEND", {"destination": q, "persistent": "true" if persistent else "false",
                              "receipt": f"{prefix}{i}"}, body)
        for i, body in enumerate(bodies)
    )
    raw.send(data)
    for i in range(len(bodies)):
        raw.expect_receipt(f"{prefix}{i}", timeout=10)


@pytest.mark.parametrize("how", ["sigterm", "sigint"])
def test_graceful_stop_exits_zero_and_keeps_persistent_messages(broker, stomp_factory, how):
    q = "/queue/" + unique("stop")
    p = stomp_factory(broker)
    p.send(q, "durable", persistent="true")
    p.send(q, "transient")
    code = broker.stop() if how == "sigterm" else broker.interrupt()
    assert code == 0, broker.log_text()
    broker.start()
    c = stomp_factory(broker)
    c.subscribe(q)
    assert [m.body for m in c.expect_exactly(1)] == ["durable"]


def test_graceful_stop_with_busy_clients(broker, stomp_factory, raw_factory):
    q = "/queue/" + unique("busy")
    p = stomp_factory(broker)
    for i in range(5):
        p.send(q, f"held{i}", persistent="true")
    holder = stomp_factory(broker)
    holder.subscribe(q, ack="client-individual")
    holder.expect_exactly(5, settle=0.1)
    stalled = raw_factory(broker)
    stalled.connect("1.2")
    stalled.send(f"SEND\ndestination:{q}\npersistent:true\ncontent-length:100\n\nhalf".encode())
    idle = raw_factory(broker)  # connected, no CONNECT yet
    start = time.monotonic()
    code = broker.stop()
    elapsed = time.monotonic() - start
    assert code == 0, broker.log_text()
    assert elapsed < 5, f"graceful stop took {elapsed:.1f}s"
    assert holder.wait_disconnected(5)
    stalled.read_until_closed(3)  # fails unless the broker closed it
    idle.read_until_closed(3)
    broker.start()
    c = stomp_factory(broker)
    c.subscribe(q)
    got = c.expect_exactly(5)
    # Unacknowledged messages come back (the half frame was never a message).
    assert [m.body for m in got] == [f"held{i}" for i in range(5)]


def test_persistent_messages_survive_sigkill(broker, raw_factory, stomp_factory):
    q = "/queue/" + unique("crash")
    raw = raw_factory(broker)
    raw.connect("1.2")
    bodies = [b"persistent-%03d" % i + b"\x00binary" * (i % 3) for i in range(200)]
    pipeline_send(raw, q, bodies, persistent=True, prefix="p")
    pipeline_send(raw, q, [b"transient-%d" % i for i in range(20)], persistent=False, prefix="t")
    broker.kill()
    broker.start()
    c = stomp_factory(broker, auto_decode=False)
    c.subscribe(q)
    got = c.expect_exactly(200, timeout=10)
    assert [m.body for m in got] == bodies
    assert all(m.headers["persistent"] == "true" for m in got)


def test_each_receipted_message_survives_immediate_sigkill(broker, stomp_factory):
    """A RECEIPT for a persistent SEND means it is stored: kill right after it arrives."""
    q = "/queue/" + unique("receipted")
    for round_ in range(3):
        p = stomp_factory(broker)
        p.send(q, f"round{round_}", persistent="true")
        broker.kill()
        broker.start()
    c = stomp_factory(broker)
    c.subscribe(q)
    assert [m.body for m in c.expect_exactly(3)] == ["round0", "round1", "round2"]


def test_non_persistent_messages_are_lost_on_restart(broker, stomp_factory):
    q = "/queue/" + unique("lost")
    p = stomp_factory(broker)
    p.send(q, "gone")
    p.send(q, "gone too", persistent="false")
    broker.restart()
    c = stomp_factory(broker)
    c.subscribe(q)
    assert c.expect_exactly(0) == []


@pytest.mark.parametrize("ack", ["client-individual", "client"])
def test_acknowledged_messages_stay_acknowledged_after_crash(broker, stomp_factory, ack):
    q = "/queue/" + unique("acked")
    p = stomp_factory(broker)
    for i in range(10):
        p.send(q, f"a{i}", persistent="true")
    c = stomp_factory(broker)
    c.subscribe(q, ack=ack)
    msgs = c.expect_exactly(10)
    if ack == "client-individual":
        for i in (0, 2, 4, 6):
            c.ack(msgs[i])  # with a receipt: confirmed only once stored
        expected = ["a1", "a3", "a5", "a7", "a8", "a9"]
    else:
        c.ack(msgs[5])  # cumulative: a0..a5
        expected = ["a6", "a7", "a8", "a9"]
    broker.kill()
    broker.start()
    d = stomp_factory(broker)
    d.subscribe(q)
    assert [m.body for m in d.expect_exactly(len(expected))] == expected


def test_committed_transaction_survives_crash(broker, stomp_factory):
    q = "/queue/" + unique("txcrash")
    p = stomp_factory(broker)
    p.begin("tx")
    for i in range(5):
        p.send(q, f"tx{i}", transaction="tx", persistent="true")
    p.commit("tx")
    p.begin("open")
    p.send(q, "uncommitted", transaction="open", persistent="true")
    broker.kill()
    broker.start()
    c = stomp_factory(broker)
    c.subscribe(q)
    assert [m.body for m in c.expect_exactly(5)] == [f"tx{i}" for i in range(5)]


def test_committed_transactional_acks_survive_crash(broker, stomp_factory):
    q = "/queue/" + unique("txack")
    p = stomp_factory(broker)
    for i in range(4):
        p.send(q, f"m{i}", persistent="true")
    c = stomp_factory(broker)
    c.subscribe(q, ack="client-individual")
    msgs = c.expect_exactly(4)
    c.begin("acks")
    c.ack(msgs[0], transaction="acks")
    c.ack(msgs[3], transaction="acks")
    c.commit("acks")
    broker.kill()
    broker.start()
    d = stomp_factory(broker)
    d.subscribe(q)
    assert [m.body for m in d.expect_exactly(2)] == ["m1", "m2"]


def test_unacked_durable_subscription_messages_survive_crash(broker, stomp_factory):
    t = "/topic/" + unique("dcrash")
    cid = unique("cid")
    s = stomp_factory(broker, client_id=cid)
    s.subscribe(t, id="d", ack="client-individual", headers={"activemq.subscriptionName": "n"})
    p = stomp_factory(broker)
    for i in range(3):
        p.send(t, f"d{i}", persistent="true")
    msgs = s.expect_exactly(3)
    s.ack(msgs[1])
    broker.kill()
    broker.start()
    s2 = stomp_factory(broker, client_id=cid)
    s2.subscribe(t, id="d", ack="client-individual", headers={"activemq.subscriptionName": "n"})
    assert [m.body for m in s2.expect_exactly(2)] == ["d0", "d2"]


def test_redelivery_count_survives_restart(broker_factory, stomp_factory):
    b = broker_factory("--max-redeliveries", "2")
    q = "/queue/" + unique("count")
    c = stomp_factory(b)
    c.subscribe(q, ack="client-individual")
    c.send(q, "counted", persistent="true")
    c.nack(c.wait_messages(1)[0])  # first redelivery
    c.wait_messages(2)
    c.close()  # handed back unacknowledged: second redelivery
    b.restart()
    d = stomp_factory(b)
    d.subscribe(q, ack="client-individual")
    (m,) = d.expect_exactly(1)
    assert m.body == "counted"
    assert m.headers.get("redelivered") == "true"
    d.nack(m)  # the third redelivery would exceed --max-redeliveries 2
    assert d.expect_exactly(1, settle=0.3)
    dlq = stomp_factory(b)
    dlq.subscribe("/queue/ActiveMQ.DLQ")
    assert [x.body for x in dlq.expect_exactly(1)] == ["counted"]


def test_repeated_restarts_do_not_duplicate_or_lose(broker, stomp_factory):
    q = "/queue/" + unique("again")
    p = stomp_factory(broker)
    for i in range(3):
        p.send(q, f"r{i}", persistent="true")
    broker.restart()
    broker.restart(kill=True)
    broker.restart()
    p2 = stomp_factory(broker)
    p2.send(q, "r3", persistent="true")
    broker.restart(kill=True)
    c = stomp_factory(broker)
    c.subscribe(q, ack="client-individual")
    got = c.expect_exactly(4)
    assert [m.body for m in got] == ["r0", "r1", "r2", "r3"]
    ids = [m.headers["message-id"] for m in got]
    assert len(set(ids)) == 4
    # Ids stay unique across restarts: a new message never reuses a stored one's id.
    c.send(q, "new")
    new = c.wait_messages(5)[-1]
    assert new.body == "new" and new.headers["message-id"] not in ids


def test_journal_segments_roll_over_and_recover(broker_factory, raw_factory, stomp_factory):
    b = broker_factory("--segment-bytes", "65536")
    q = "/queue/" + unique("segments")
    raw = raw_factory(b)
    raw.connect("1.2")
    bodies = [(b"%04d" % i) + b"s" * 1020 for i in range(400)]  # ~400 KB over 64 KB segments
    pipeline_send(raw, q, bodies)
    c = stomp_factory(b, auto_decode=False)
    c.subscribe(q, ack="client-individual", headers={"activemq.prefetchSize": "50"})
    for i in range(300):
        m = c.wait_messages(i + 1)[i]
        c.ack(m, receipt=(i == 299))
    c.close()
    b.restart(kill=True)
    d = stomp_factory(b, auto_decode=False)
    d.subscribe(q)
    got = d.expect_exactly(100, timeout=10)
    assert [m.body for m in got] == bodies[300:]


def test_disk_space_is_reclaimed_after_consumption(broker_factory, raw_factory, stomp_factory):
    b = broker_factory("--segment-bytes", "65536")
    q = "/queue/" + unique("reclaim")
    raw = raw_factory(b)
    raw.connect("1.2")
    pipeline_send(raw, q, [b"r" * 4000] * 200)  # ~800 KB

    def journal_bytes():
        return sum(f.stat().st_size for f in b.data_dir.rglob("*") if f.is_file())

    peak = journal_bytes()
    assert peak > 700_000, peak
    c = stomp_factory(b)
    c.subscribe(q, ack="client", headers={"activemq.prefetchSize": "1000"})
    msgs = c.expect_exactly(200, timeout=10)
    c.ack(msgs[-1])
    # Keep writing a little so the current segment moves on.
    pipeline_send(raw, "/queue/" + unique("filler"), [b"f" * 4000] * 20, persistent=True, prefix="f")
    assert wait_until(lambda: journal_bytes() < peak / 2, timeout=8, interval=0.2), (peak, journal_bytes())


def test_memory_persistence_keeps_nothing_across_restart(broker_factory, stomp_factory):
    b = broker_factory("--persistence", "memory", *TEST_TIMEOUT_ARGS, defaults=False)
    q = "/queue/" + unique("mem")
    p = stomp_factory(b)
    p.send(q, "persistent but in memory", persistent="true")
    c = stomp_factory(b)
    c.subscribe(q, ack="client-individual")
    assert [m.body for m in c.expect_exactly(1)] == ["persistent but in memory"]
    c.close()
    b.restart()
    d = stomp_factory(b)
    d.subscribe(q)
    assert d.expect_exactly(0) == []


def test_second_broker_on_same_data_dir_is_refused(broker):
    """Two brokers writing one journal would corrupt it: the second must not start."""
    port = free_port()
    log = broker.workdir / "second.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [HAWSER_BIN, "serve", "--data-dir", str(broker.data_dir), "--stomp", f"127.0.0.1:{port}",
             "--openwire", f"127.0.0.1:{free_port()}", *TEST_TIMEOUT_ARGS],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        try:
            code = proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            code = None
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
    assert code is not None and code != 0, (
        "a second broker started on a data directory in use: " + log.read_text(errors="replace")[-2000:])


def test_sigterm_with_consumer_that_does_not_read_exits_promptly(broker, raw_factory, stomp_factory):
    """A consumer whose socket buffer is full must not hold a graceful stop for long."""
    import socket

    q = "/queue/" + unique("stuck")
    producer = raw_factory(broker)
    producer.connect("1.2")
    pipeline_send(producer, q, [b"s" * 100_000] * 40, persistent=True, prefix="s")
    stuck = raw_factory(broker)
    stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect("1.2")
    stuck.send_frame("SUBSCRIBE", {"destination": q, "id": "s", "ack": "client-individual"})
    time.sleep(0.5)  # the broker fills the socket; the client never reads
    start = time.monotonic()
    code = broker.stop(timeout=5)
    elapsed = time.monotonic() - start
    assert code == 0, (f"exit code {code} after {elapsed:.1f}s (-9: still running 5 s after SIGTERM, "
                       f"because a consumer did not read)\n{broker.log_text()[-1500:]}")
    broker.start()
    c = stomp_factory(broker, auto_decode=False)
    c.subscribe(q)
    assert len(c.expect_exactly(40, timeout=10)) == 40


def test_topic_message_acked_by_one_durable_stays_for_another(broker, stomp_factory):
    t = "/topic/" + unique("fan")
    ca, cb = unique("A"), unique("B")
    for cid in (ca, cb):
        s = stomp_factory(broker, client_id=cid)
        s.subscribe(t, id="d", ack="client-individual", headers={"activemq.subscriptionName": "sub"})
        s.disconnect()
    p = stomp_factory(broker)
    for i in range(3):
        p.send(t, f"f{i}", persistent="true")
    a = stomp_factory(broker, client_id=ca)
    a.subscribe(t, id="d", ack="client-individual", headers={"activemq.subscriptionName": "sub"})
    for m in a.expect_exactly(3):
        a.ack(m)
    broker.kill()
    broker.start()
    a2 = stomp_factory(broker, client_id=ca)
    a2.subscribe(t, id="d", ack="client-individual", headers={"activemq.subscriptionName": "sub"})
    b = stomp_factory(broker, client_id=cb)
    b.subscribe(t, id="d", ack="client-individual", headers={"activemq.subscriptionName": "sub"})
    assert [m.body for m in b.expect_exactly(3)] == ["f0", "f1", "f2"]
    assert a2.messages == []
    for m in b.messages:
        b.ack(m)
    broker.kill()
    broker.start()
    b2 = stomp_factory(broker, client_id=cb)
    b2.subscribe(t, id="d", headers={"activemq.subscriptionName": "sub"})
    assert b2.expect_exactly(0) == []


def test_old_messages_survive_journal_reclaim(broker_factory, raw_factory, stomp_factory):
    """Messages written long ago stay when the segments around them are reclaimed."""
    b = broker_factory("--segment-bytes", "65536")
    t = "/topic/" + unique("old")
    old_q = "/queue/" + unique("oldq")
    cid = unique("cid")
    s = stomp_factory(b, client_id=cid)
    s.subscribe(t, id="d", headers={"activemq.subscriptionName": "keep"})
    s.disconnect()
    p = stomp_factory(b)
    p.send(t, "old durable message", persistent="true")
    p.send(old_q, "old queue message", persistent="true")
    # Many segments' worth of traffic, all consumed.
    busy = "/queue/" + unique("busy")
    raw = raw_factory(b)
    raw.connect("1.2")
    c = stomp_factory(b)
    c.subscribe(busy, ack="client", headers={"activemq.prefetchSize": "1000"})
    for batch in range(4):
        pipeline_send(raw, busy, [b"b" * 2000] * 50, prefix=f"b{batch}-")
        msgs = c.wait_messages(50 * (batch + 1), timeout=10)
        c.ack(msgs[-1])
    time.sleep(1.2)  # let the reclaimer run (it looks every 0.5 s)
    b.restart(kill=True)
    s2 = stomp_factory(b, client_id=cid)
    s2.subscribe(t, id="d", headers={"activemq.subscriptionName": "keep"})
    assert [m.body for m in s2.expect_exactly(1)] == ["old durable message"]
    q = stomp_factory(b)
    q.subscribe(old_q)
    assert [m.body for m in q.expect_exactly(1)] == ["old queue message"]
    e = stomp_factory(b)
    e.subscribe(busy)
    assert e.expect_exactly(0) == []
