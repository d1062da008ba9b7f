"""Messaging behaviour through stomp-py: queues, topics, acknowledgement modes,
redelivery, dead letters, priority, expiry, exclusive consumers, prefetch,
temporary destinations, transactions, durable subscriptions and selectors."""

import re
import time

import pytest

from conftest import DEFAULT_ARGS, Broker, encode_frame, now_ms, unique

DLQ = "/queue/ActiveMQ.DLQ"
MESSAGE_ID = re.compile(r"^ID:hawser-\d+$")


def qname(prefix="q"):
    return "/queue/" + unique(prefix)


def tname(prefix="t"):
    return "/topic/" + unique(prefix)


# ---------------------------------------------------------------------------
# Queues and topics
# ---------------------------------------------------------------------------


def test_queue_delivers_every_message_once_in_order(broker, stomp_factory):
    q = qname()
    c = stomp_factory(broker)
    c.subscribe(q)
    for i in range(30):
        c.send(q, f"m{i}", receipt=(i == 29))
    assert [m.body for m in c.expect_exactly(30)] == [f"m{i}" for i in range(30)]


def test_queue_keeps_messages_until_a_consumer_comes(broker, stomp_factory):
    q = qname()
    p = stomp_factory(broker)
    for i in range(5):
        p.send(q, f"early{i}")
    c = stomp_factory(broker)
    c.subscribe(q)
    assert [m.body for m in c.expect_exactly(5)] == [f"early{i}" for i in range(5)]


def test_competing_consumers_share_a_queue(broker, stomp_factory):
    q = qname()
    a = stomp_factory(broker)
    b = stomp_factory(broker)
    a.subscribe(q)
    b.subscribe(q)
    p = stomp_factory(broker)
    for i in range(40):
        p.send(q, f"w{i}", receipt=(i == 39))
    assert wait_total([a, b], 40)
    time.sleep(0.3)
    got_a, got_b = a.bodies(), b.bodies()
    assert sorted(got_a + got_b, key=lambda s: int(s[1:])) == [f"w{i}" for i in range(40)]
    assert len(got_a) + len(got_b) == 40, "a message was delivered twice"
    assert got_a and got_b, f"one consumer got everything: a={len(got_a)} b={len(got_b)}"
    # Each consumer sees its share in send order.
    assert got_a == sorted(got_a, key=lambda s: int(s[1:]))
    assert got_b == sorted(got_b, key=lambda s: int(s[1:]))


def test_consumer_priority_serves_the_highest_first(broker, stomp_factory):
    """ActiveMQ's activemq.priority header: the higher consumer takes what
    its window holds, the lower one only the rest."""
    q = qname()
    low, high = stomp_factory(broker), stomp_factory(broker)
    low.subscribe(q, ack="client-individual", headers={"activemq.priority": "-1", "activemq.prefetchSize": "100"})
    high.subscribe(q, ack="client-individual", headers={"activemq.priority": "9", "activemq.prefetchSize": "3"})
    p = stomp_factory(broker)
    for i in range(10):
        p.send(q, f"m{i}", receipt=(i == 9))
    assert wait_total([low, high], 10)
    assert high.bodies() == ["m0", "m1", "m2"]
    assert low.bodies() == [f"m{i}" for i in range(3, 10)]
    bad = stomp_factory(broker)
    bad.conn.subscribe(q, "s", headers={"activemq.priority": "high"})
    assert "activemq.priority" in bad.wait_error().headers.get("message", "")
    assert bad.wait_disconnected()


def wait_total(clients, n, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(len(c.messages) for c in clients) >= n:
            return True
        time.sleep(0.02)
    return False


def test_topic_fans_out_to_current_subscribers_only(broker, stomp_factory):
    t = tname()
    a = stomp_factory(broker)
    b = stomp_factory(broker, version="1.1")
    a.subscribe(t)
    b.subscribe(t)
    p = stomp_factory(broker)
    for i in range(5):
        p.send(t, f"news{i}")
    late = stomp_factory(broker)
    late.subscribe(t)
    expected = [f"news{i}" for i in range(5)]
    assert [m.body for m in a.expect_exactly(5)] == expected
    assert [m.body for m in b.expect_exactly(5)] == expected
    assert late.expect_exactly(0) == []
    for m in a.messages:
        assert m.headers["destination"] == t


def test_topic_without_subscribers_drops_messages(broker, stomp_factory):
    t = tname()
    p = stomp_factory(broker)
    p.send(t, "nobody listens", headers={"persistent": "true"})
    c = stomp_factory(broker)
    c.subscribe(t)
    p.send(t, "now someone does")
    assert [m.body for m in c.expect_exactly(1)] == ["now someone does"]


def test_queue_and_topic_of_same_name_are_distinct(broker, stomp_factory):
    name = unique("same")
    c = stomp_factory(broker)
    c.subscribe("/queue/" + name, id="q")
    c.subscribe("/topic/" + name, id="t")
    c.send("/queue/" + name, "to queue")
    c.send("/topic/" + name, "to topic")
    got = {m.headers["subscription"]: m.body for m in c.expect_exactly(2)}
    assert got == {"q": "to queue", "t": "to topic"}


def test_two_subscriptions_on_one_connection(broker, stomp_factory):
    t = tname()
    c = stomp_factory(broker)
    c.subscribe(t, id="one")
    c.subscribe(t, id="two")
    c.send(t, "twice")
    subs = sorted(m.headers["subscription"] for m in c.expect_exactly(2))
    assert subs == ["one", "two"]


def test_duplicate_subscription_id_is_an_error(broker, stomp_factory):
    c = stomp_factory(broker)
    c.subscribe(qname(), id="dup")
    c.conn.subscribe(qname(), "dup")
    err = c.wait_error()
    assert "dup" in err.headers.get("message", "")
    assert c.wait_disconnected()


# ---------------------------------------------------------------------------
# Acknowledgement modes, NACK, redelivery
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_client_ack_is_cumulative(broker, stomp_factory, version):
    q = qname()
    p = stomp_factory(broker)
    for i in range(5):
        p.send(q, f"c{i}")
    a = stomp_factory(broker, version=version)
    a.subscribe(q, id="s", ack="client")
    msgs = a.expect_exactly(5)
    a.ack(msgs[2])  # covers c0..c2
    a.disconnect()
    b = stomp_factory(broker)
    b.subscribe(q, ack="client")
    again = b.expect_exactly(2)
    assert [m.body for m in again] == ["c3", "c4"]
    assert all(m.headers.get("redelivered") == "true" for m in again)
    assert [m.headers["message-id"] for m in again] == [m.headers["message-id"] for m in msgs[3:]]


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_client_individual_ack_acknowledges_one(broker, stomp_factory, version):
    q = qname()
    p = stomp_factory(broker)
    for i in range(3):
        p.send(q, f"i{i}")
    a = stomp_factory(broker, version=version)
    a.subscribe(q, id="s", ack="client-individual")
    msgs = a.expect_exactly(3)
    a.ack(msgs[1])
    a.disconnect()
    b = stomp_factory(broker)
    b.subscribe(q, ack="client-individual")
    again = b.expect_exactly(2)
    assert [m.body for m in again] == ["i0", "i2"]
    assert all(m.headers.get("redelivered") == "true" for m in again)


def test_auto_ack_messages_are_not_redelivered(broker, stomp_factory):
    q = qname()
    a = stomp_factory(broker)
    a.subscribe(q)
    for i in range(3):
        a.send(q, f"a{i}")
    a.expect_exactly(3)
    a.disconnect()
    b = stomp_factory(broker)
    b.subscribe(q)
    b.send(q, "fresh")
    assert [m.body for m in b.expect_exactly(1)] == ["fresh"]


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_nack_redelivers_with_redelivered_flag(broker, stomp_factory, version):
    q = qname()
    c = stomp_factory(broker, version=version)
    c.subscribe(q, id="s", ack="client-individual")
    c.send(q, "refuse me", headers={"persistent": "true", "x-tag": "t1"})
    (first,) = c.wait_messages(1)
    assert "redelivered" not in first.headers
    c.clear()
    c.nack(first)
    (second,) = c.expect_exactly(1)
    assert second.body == "refuse me"
    assert second.headers["redelivered"] == "true"
    assert second.headers["message-id"] == first.headers["message-id"]
    assert second.headers["x-tag"] == "t1"
    c.ack(second)
    c.disconnect()
    d = stomp_factory(broker)
    d.subscribe(q)
    d.send(q, "next")
    assert [m.body for m in d.expect_exactly(1)] == ["next"]


def test_disconnect_returns_unacked_messages(broker, stomp_factory):
    q = qname()
    p = stomp_factory(broker)
    for i in range(4):
        p.send(q, f"u{i}", headers={"persistent": "true" if i % 2 else "false"})
    a = stomp_factory(broker)
    a.subscribe(q, ack="client-individual")
    assert [m.body for m in a.expect_exactly(4)] == [f"u{i}" for i in range(4)]
    a.disconnect()
    b = stomp_factory(broker)
    b.subscribe(q, ack="client-individual")
    again = b.expect_exactly(4)
    assert [m.body for m in again] == [f"u{i}" for i in range(4)]
    assert [m.headers.get("redelivered") for m in again] == ["true"] * 4


def test_vanished_client_returns_unacked_messages(broker, stomp_factory):
    q = qname()
    a = stomp_factory(broker)
    a.subscribe(q, ack="client")
    a.send(q, "held", headers={"persistent": "true"})
    a.wait_messages(1)
    a.drop()  # no DISCONNECT: the socket just closes
    b = stomp_factory(broker)
    b.subscribe(q, ack="client")
    (m,) = b.expect_exactly(1)
    assert m.body == "held" and m.headers["redelivered"] == "true"


def test_unacked_messages_go_to_another_live_consumer(broker, stomp_factory):
    q = qname()
    a = stomp_factory(broker)
    a.subscribe(q, ack="client-individual", headers={"activemq.prefetchSize": "1"})
    b = stomp_factory(broker)
    b.subscribe(q, ack="client-individual", headers={"activemq.prefetchSize": "1"})
    p = stomp_factory(broker)
    p.send(q, "x1")
    p.send(q, "x2")
    assert wait_total([a, b], 2)
    holder, other = (a, b) if a.messages else (b, a)
    assert len(holder.messages) == 1 and len(other.messages) == 1
    held = holder.messages[0].body
    holder.disconnect()
    # The other consumer's prefetch of 1 is full until it acks.
    time.sleep(0.3)
    assert len(other.messages) == 1
    other.ack(other.messages[0])
    got = other.expect_exactly(2)
    assert got[1].body == held
    assert got[1].headers["redelivered"] == "true"


# ---------------------------------------------------------------------------
# Dead letters
# ---------------------------------------------------------------------------


def test_nacked_message_goes_to_dlq_after_max_redeliveries(broker_factory, stomp_factory):
    b = broker_factory("--max-redeliveries", "2")
    name = unique("poison")
    q = "/queue/" + name
    c = stomp_factory(b)
    c.subscribe(q, ack="client-individual")
    c.send(q, "poison", headers={"persistent": "true", "x-keep": "kept"})
    ids = set()
    for delivery in range(3):  # the first delivery and 2 redeliveries
        msgs = c.wait_messages(delivery + 1)
        m = msgs[delivery]
        assert m.body == "poison"
        assert m.headers.get("redelivered") == (None if delivery == 0 else "true")
        ids.add(m.headers["message-id"])
        c.nack(m)
    assert len(ids) == 1
    original_id = ids.pop()
    time.sleep(0.4)
    assert len(c.messages) == 3, "redelivered more often than --max-redeliveries allows"
    c.disconnect()
    # Dead-lettering is persistent: it survives a restart.
    b.restart()
    d = stomp_factory(b)
    d.subscribe(DLQ, ack="client-individual")
    (dead,) = d.expect_exactly(1)
    h = dead.headers
    assert dead.body == "poison"
    assert h["destination"] == DLQ
    assert h["original-destination"] == f"queue://{name}"
    assert h["original-message-id"] == original_id
    assert h.get("dlqDeliveryFailureCause"), h
    assert h["persistent"] == "true"
    assert h["x-keep"] == "kept"
    # Nothing is left in the original queue.
    e = stomp_factory(b)
    e.subscribe(q)
    assert e.expect_exactly(0) == []


def test_repeatedly_abandoned_message_goes_to_dlq(broker_factory, stomp_factory):
    b = broker_factory("--max-redeliveries", "2")
    name = unique("abandon")
    q = "/queue/" + name
    p = stomp_factory(b)
    p.send(q, "hot potato", headers={"persistent": "true"})
    for delivery in range(3):
        c = stomp_factory(b)
        c.subscribe(q, ack="client-individual")
        (m,) = c.expect_exactly(1, settle=0.1)
        assert m.headers.get("redelivered") == (None if delivery == 0 else "true")
        c.drop()
    d = stomp_factory(b)
    d.subscribe(DLQ)
    (dead,) = d.expect_exactly(1)
    assert dead.body == "hot potato"
    assert dead.headers["original-destination"] == f"queue://{name}"
    c = stomp_factory(b)
    c.subscribe(q)
    assert c.expect_exactly(0) == []


def test_default_max_redeliveries_is_six(broker, stomp_factory):
    q = qname()
    c = stomp_factory(broker)
    c.subscribe(q, ack="client-individual")
    c.send(q, "seven tries")
    for delivery in range(7):
        msgs = c.wait_messages(delivery + 1)
        c.nack(msgs[delivery])
    d = stomp_factory(broker)
    d.subscribe(DLQ)
    (dead,) = d.expect_exactly(1)
    assert dead.body == "seven tries"
    assert len(c.messages) == 7


# ---------------------------------------------------------------------------
# Priority and expiry
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("persistent", [False, True])
def test_higher_priority_first_fifo_within_priority(broker, stomp_factory, persistent):
    q = qname()
    p = stomp_factory(broker)
    sent = [(1, "a1"), (5, "b5"), (9, "c9"), (5, "d5"), (0, "e0"), (9, "f9"), (None, "g4"), (4, "h4")]
    for prio, body in sent:
        headers = {"persistent": "true" if persistent else "false"}
        if prio is not None:
            headers["priority"] = str(prio)
        p.send(q, body, headers=headers)
    c = stomp_factory(broker)
    c.subscribe(q)
    got = c.expect_exactly(len(sent))
    assert [m.body for m in got] == ["c9", "f9", "b5", "d5", "g4", "h4", "a1", "e0"]
    assert [m.headers["priority"] for m in got] == ["9", "9", "5", "5", "4", "4", "1", "0"]


def test_priority_order_survives_restart(broker, stomp_factory):
    q = qname()
    p = stomp_factory(broker)
    for prio, body in [(2, "low"), (8, "high"), (2, "low2"), (8, "high2")]:
        p.send(q, body, headers={"persistent": "true", "priority": str(prio)})
    broker.restart()
    c = stomp_factory(broker)
    c.subscribe(q)
    assert [m.body for m in c.expect_exactly(4)] == ["high", "high2", "low", "low2"]


def test_expired_messages_are_not_delivered(broker, stomp_factory):
    name = unique("exp")
    q = "/queue/" + name
    p = stomp_factory(broker)
    soon = now_ms() + 200
    future = now_ms() + 600_000
    p.send(q, "expired-persistent", headers={"persistent": "true", "expires": str(soon)})
    p.send(q, "expired-transient", headers={"expires": str(soon)})
    p.send(q, "never-0", headers={"expires": "0"})
    p.send(q, "later", headers={"expires": str(future), "persistent": "true"})
    p.send(q, "no-expiry")
    time.sleep(0.5)
    c = stomp_factory(broker)
    c.subscribe(q)
    got = c.expect_exactly(3)
    assert [m.body for m in got] == ["never-0", "later", "no-expiry"]
    assert got[0].headers["expires"] == "0"
    assert got[1].headers["expires"] == str(future)
    # The persistent expired message is dead-lettered, the non-persistent one dropped.
    d = stomp_factory(broker)
    d.subscribe(DLQ)
    (dead,) = d.expect_exactly(1, timeout=5)
    assert dead.body == "expired-persistent"
    assert dead.headers["original-destination"] == f"queue://{name}"
    assert dead.headers.get("dlqDeliveryFailureCause"), dead.headers


def test_already_expired_message_is_not_delivered_to_waiting_consumer(broker, stomp_factory):
    q = qname()
    c = stomp_factory(broker)
    c.subscribe(q)
    c.send(q, "too late", headers={"expires": str(now_ms() - 1000)})
    c.send(q, "in time", headers={"expires": str(now_ms() + 60_000)})
    assert [m.body for m in c.expect_exactly(1)] == ["in time"]


def test_expired_messages_do_not_come_back_after_restart(broker, stomp_factory):
    q = qname()
    p = stomp_factory(broker)
    p.send(q, "short-lived", headers={"persistent": "true", "expires": str(now_ms() + 300)})
    p.send(q, "long-lived", headers={"persistent": "true"})
    broker.stop()
    time.sleep(0.5)
    broker.start()
    c = stomp_factory(broker)
    c.subscribe(q)
    assert [m.body for m in c.expect_exactly(1)] == ["long-lived"]


# ---------------------------------------------------------------------------
# Exclusive consumers and prefetch
# ---------------------------------------------------------------------------


def test_exclusive_consumer_gets_everything(broker, stomp_factory):
    q = qname()
    normal = stomp_factory(broker)
    normal.subscribe(q, id="normal")
    excl = stomp_factory(broker)
    excl.subscribe(q, id="excl", headers={"activemq.exclusive": "true"})
    p = stomp_factory(broker)
    for i in range(10):
        p.send(q, f"e{i}", receipt=(i == 9))
    assert [m.body for m in excl.expect_exactly(10)] == [f"e{i}" for i in range(10)]
    assert normal.messages == []
    # When the exclusive consumer leaves, the others take over.
    excl.disconnect()
    for i in range(3):
        p.send(q, f"n{i}")
    assert [m.body for m in normal.expect_exactly(3)] == ["n0", "n1", "n2"]


def test_second_exclusive_consumer_takes_over_when_first_leaves(broker, stomp_factory):
    q = qname()
    first = stomp_factory(broker)
    first.subscribe(q, headers={"activemq.exclusive": "true"})
    second = stomp_factory(broker)
    second.subscribe(q, headers={"activemq.exclusive": "true"})
    p = stomp_factory(broker)
    for i in range(4):
        p.send(q, f"f{i}")
    first.expect_exactly(4)
    assert second.messages == []
    first.disconnect()
    p.send(q, "for second")
    assert [m.body for m in second.expect_exactly(1)] == ["for second"]


@pytest.mark.parametrize("ack", ["client-individual", "client"])
def test_prefetch_limits_unacked_messages(broker, stomp_factory, ack):
    q = qname()
    p = stomp_factory(broker)
    for i in range(6):
        p.send(q, f"p{i}")
    c = stomp_factory(broker)
    c.subscribe(q, ack=ack, headers={"activemq.prefetchSize": "2"})
    got = c.expect_exactly(2)
    assert [m.body for m in got] == ["p0", "p1"]
    c.ack(got[0])
    got = c.expect_exactly(3)
    assert got[2].body == "p2"
    # Another consumer gets what the first cannot take.
    other = stomp_factory(broker)
    other.subscribe(q, ack=ack)
    assert [m.body for m in other.expect_exactly(3)] == ["p3", "p4", "p5"]


def test_default_prefetch_is_1000(broker, stomp_factory, raw_factory):
    q = qname()
    raw = raw_factory(broker)
    raw.connect("1.2")
    batch = b"".join(encode_frame("SEND", {"destination": q}, b"m%d" % i) for i in range(1005))
    raw.send(batch + encode_frame("SEND", {"destination": q, "receipt": "last"}, b"m1005"))
    raw.expect_receipt("last", timeout=10)
    c = stomp_factory(broker)
    c.subscribe(q, ack="client-individual")
    got = c.expect_exactly(1000, timeout=10, settle=0.5)
    assert got[-1].body == "m999"
    c.ack(got[0])
    got = c.expect_exactly(1001, settle=0.3)
    assert got[-1].body == "m1000"


# ---------------------------------------------------------------------------
# Temporary destinations
# ---------------------------------------------------------------------------


def test_temp_queue_request_reply(broker, stomp_factory):
    service_q = qname("service")
    requester = stomp_factory(broker)
    requester.subscribe("/temp-queue/replies", id="replies")
    service = stomp_factory(broker)
    service.subscribe(service_q, id="svc")
    requester.send(service_q, "ping", headers={"reply-to": "/temp-queue/replies", "correlation-id": "c-1"})
    (req,) = service.expect_exactly(1)
    reply_to = req.headers["reply-to"]
    assert reply_to.startswith("/remote-temp-queue/"), reply_to
    service.send(reply_to, "pong", headers={"correlation-id": req.headers["correlation-id"]})
    (reply,) = requester.expect_exactly(1)
    assert reply.body == "pong"
    assert reply.headers["correlation-id"] == "c-1"
    assert reply.headers["subscription"] == "replies"


def test_temp_queues_of_different_connections_are_separate(broker, stomp_factory):
    a = stomp_factory(broker)
    b = stomp_factory(broker)
    a.subscribe("/temp-queue/mine")
    b.subscribe("/temp-queue/mine")
    a.send("/temp-queue/mine", "for a")
    b.send("/temp-queue/mine", "for b")
    assert [m.body for m in a.expect_exactly(1)] == ["for a"]
    assert [m.body for m in b.expect_exactly(1)] == ["for b"]


def test_temp_topic_is_owned_by_its_connection(broker, stomp_factory):
    a = stomp_factory(broker)
    b = stomp_factory(broker)
    a.subscribe("/temp-topic/events", id="a1")
    a.subscribe("/temp-topic/events", id="a2")
    b.subscribe("/temp-topic/events", id="b1")
    a.send("/temp-topic/events", "event", headers={"reply-to": "/temp-topic/events"})
    got = a.expect_exactly(2)
    assert sorted(m.headers["subscription"] for m in got) == ["a1", "a2"]
    assert got[0].headers["reply-to"].startswith("/remote-temp-topic/")
    assert b.expect_exactly(0) == []


def test_temp_queue_disappears_with_its_connection(broker, stomp_factory):
    requester = stomp_factory(broker)
    requester.subscribe("/temp-queue/gone", ack="client-individual")
    service_q = qname("svc")
    requester.send(service_q, "req", headers={"reply-to": "/temp-queue/gone"})
    service = stomp_factory(broker)
    service.subscribe(service_q)
    (req,) = service.expect_exactly(1)
    requester.disconnect()
    # A reply to the vanished queue must not reach a new connection that uses the same name.
    newcomer = stomp_factory(broker)
    newcomer.subscribe("/temp-queue/gone")
    service.send(req.headers["reply-to"], "late reply", receipt=False)
    time.sleep(0.3)
    assert newcomer.messages == []


# ---------------------------------------------------------------------------
# Transactions
# ---------------------------------------------------------------------------


def test_transacted_sends_wait_for_commit(broker, stomp_factory):
    q = qname()
    c = stomp_factory(broker)
    c.subscribe(q)
    p = stomp_factory(broker)
    p.begin("tx1")
    for i in range(3):
        p.send(q, f"tx{i}", transaction="tx1", persistent="true" if i == 1 else "false")
    p.send(q, "outside")
    assert [m.body for m in c.expect_exactly(1)] == ["outside"]
    p.commit("tx1")
    assert [m.body for m in c.expect_exactly(4)] == ["outside", "tx0", "tx1", "tx2"]


def test_aborted_sends_are_discarded(broker, stomp_factory):
    q = qname()
    c = stomp_factory(broker)
    c.subscribe(q)
    p = stomp_factory(broker)
    p.begin("tx-a")
    p.send(q, "never", transaction="tx-a")
    p.send(q, "never either", transaction="tx-a", persistent="true")
    p.abort("tx-a")
    p.send(q, "after abort")
    assert [m.body for m in c.expect_exactly(1)] == ["after abort"]


def test_aborted_acks_are_redelivered(broker, stomp_factory):
    q = qname()
    c = stomp_factory(broker)
    c.subscribe(q, ack="client-individual")
    c.send(q, "k1")
    c.send(q, "k2")
    first = c.expect_exactly(2)
    c.clear()
    c.begin("tx-ack")
    for m in first:
        c.ack(m, transaction="tx-ack")
    c.abort("tx-ack")
    again = c.expect_exactly(2)
    assert [m.body for m in again] == ["k1", "k2"]
    assert all(m.headers.get("redelivered") == "true" for m in again)
    for m in again:
        c.ack(m)
    c.disconnect()
    d = stomp_factory(broker)
    d.subscribe(q)
    assert d.expect_exactly(0) == []


def test_committed_acks_settle_messages(broker, stomp_factory):
    q = qname()
    c = stomp_factory(broker)
    c.subscribe(q, ack="client-individual")
    c.send(q, "done1", persistent="true")
    c.send(q, "done2")
    msgs = c.expect_exactly(2)
    c.begin("tx-c")
    for m in msgs:
        c.ack(m, transaction="tx-c")
    c.commit("tx-c")
    c.disconnect()
    d = stomp_factory(broker)
    d.subscribe(q)
    assert d.expect_exactly(0) == []


def test_open_transaction_is_rolled_back_on_disconnect(broker, stomp_factory):
    q = qname()
    c = stomp_factory(broker)
    c.subscribe(q)
    p = stomp_factory(broker)
    p.begin("tx-open")
    p.send(q, "uncommitted", transaction="tx-open")
    p.disconnect()
    c.send(q, "marker")
    assert [m.body for m in c.expect_exactly(1)] == ["marker"]


def test_transactions_belong_to_their_connection(broker, stomp_factory):
    q = qname()
    c = stomp_factory(broker)
    c.subscribe(q)
    a = stomp_factory(broker)
    a.begin("shared-name")
    a.send(q, "from a", transaction="shared-name")
    b = stomp_factory(broker)
    b.conn.commit(transaction="shared-name")
    b.wait_error()
    assert b.wait_disconnected()
    assert c.expect_exactly(0, settle=0.2) == []
    a.commit("shared-name")
    assert [m.body for m in c.expect_exactly(1)] == ["from a"]


def test_two_transactions_on_one_connection(broker, stomp_factory):
    q = qname()
    c = stomp_factory(broker)
    c.subscribe(q)
    p = stomp_factory(broker)
    p.begin("t1")
    p.begin("t2")
    p.send(q, "in t1", transaction="t1")
    p.send(q, "in t2", transaction="t2")
    p.abort("t1")
    p.commit("t2")
    assert [m.body for m in c.expect_exactly(1)] == ["in t2"]


def test_begin_of_open_transaction_is_an_error(broker, stomp_factory):
    c = stomp_factory(broker)
    c.begin("twice")
    c.conn.begin(transaction="twice")
    err = c.wait_error()
    assert "twice" in err.headers.get("message", "")
    assert c.wait_disconnected()


# ---------------------------------------------------------------------------
# Durable topic subscriptions and noLocal
# ---------------------------------------------------------------------------


def durable_subscribe(client, topic, name, **headers):
    hdrs = {"activemq.subscriptionName": name}
    hdrs.update(headers)
    client.subscribe(topic, id="dsub", ack="client-individual", headers=hdrs)


@pytest.mark.parametrize("restart", ["none", "sigterm", "sigkill"])
def test_durable_subscription_keeps_messages_while_away(broker, stomp_factory, restart):
    t = tname("dur")
    cid = unique("client")
    s = stomp_factory(broker, client_id=cid)
    durable_subscribe(s, t, "sub1")
    s.send(t, "while here")
    (m,) = s.expect_exactly(1)
    s.ack(m)
    s.disconnect()
    p = stomp_factory(broker)
    for i in range(3):
        p.send(t, f"away{i}", persistent="true")
    p.send(t, "away-transient")
    if restart == "sigterm":
        broker.restart()
    elif restart == "sigkill":
        broker.restart(kill=True)
    s2 = stomp_factory(broker, client_id=cid)
    durable_subscribe(s2, t, "sub1")
    expected = ["away0", "away1", "away2"] + (["away-transient"] if restart == "none" else [])
    got = s2.expect_exactly(len(expected))
    assert [m.body for m in got] == expected
    for m in got:
        s2.ack(m)
    s2.disconnect()
    # Acknowledged durable messages are gone for good.
    s3 = stomp_factory(broker, client_id=cid)
    durable_subscribe(s3, t, "sub1")
    assert s3.expect_exactly(0) == []


def test_durable_subscription_survives_restart_before_any_message(broker, stomp_factory):
    t = tname("dur")
    cid = unique("client")
    s = stomp_factory(broker, client_id=cid)
    durable_subscribe(s, t, "early")
    s.disconnect()
    broker.restart()
    p = stomp_factory(broker)
    p.send(t, "after restart", persistent="true")
    s2 = stomp_factory(broker, client_id=cid)
    durable_subscribe(s2, t, "early")
    assert [m.body for m in s2.expect_exactly(1)] == ["after restart"]


def test_unsubscribe_with_subscription_name_deletes_durable(broker, stomp_factory):
    t = tname("dur")
    cid = unique("client")
    s = stomp_factory(broker, client_id=cid)
    durable_subscribe(s, t, "gone")
    s.unsubscribe("dsub", headers={"activemq.subscriptionName": "gone"})
    s.disconnect()
    p = stomp_factory(broker)
    p.send(t, "nobody keeps this", persistent="true")
    broker.restart()
    s2 = stomp_factory(broker, client_id=cid)
    durable_subscribe(s2, t, "gone")
    assert s2.expect_exactly(0) == []
    p2 = stomp_factory(broker)
    p2.send(t, "new one")
    assert [m.body for m in s2.expect_exactly(1)] == ["new one"]


def test_unsubscribe_by_id_keeps_durable(broker, stomp_factory):
    t = tname("dur")
    cid = unique("client")
    s = stomp_factory(broker, client_id=cid)
    durable_subscribe(s, t, "kept")
    s.unsubscribe("dsub")
    p = stomp_factory(broker)
    p.send(t, "kept for later", persistent="true")
    durable_subscribe(s, t, "kept")
    assert [m.body for m in s.expect_exactly(1)] == ["kept for later"]


def test_inactive_durable_deleted_from_other_connection_of_same_client(broker, stomp_factory):
    t = tname("dur")
    cid = unique("client")
    s = stomp_factory(broker, client_id=cid)
    durable_subscribe(s, t, "del")
    s.disconnect()
    p = stomp_factory(broker)
    p.send(t, "pending", persistent="true")
    s2 = stomp_factory(broker, client_id=cid)
    s2.unsubscribe("no-such-id", headers={"activemq.subscriptionName": "del"})
    durable_subscribe(s2, t, "del")
    assert s2.expect_exactly(0) == []


def test_durable_selector_applies_while_away_and_after_restart(broker, stomp_factory):
    t = tname("dursel")
    cid = unique("client")
    s = stomp_factory(broker, client_id=cid)
    durable_subscribe(s, t, "reds", selector="color = 'red'")
    s.disconnect()
    p = stomp_factory(broker)
    for i, color in enumerate(["red", "blue", "red", "green"]):
        p.send(t, f"{color}{i}", persistent="true", color=color)
    broker.restart()
    s2 = stomp_factory(broker, client_id=cid)
    durable_subscribe(s2, t, "reds", selector="color = 'red'")
    assert [m.body for m in s2.expect_exactly(2)] == ["red0", "red2"]


def test_durable_subscription_needs_client_id(broker, stomp_factory):
    c = stomp_factory(broker)
    c.conn.subscribe(tname(), "d", headers={"activemq.subscriptionName": "x"})
    err = c.wait_error()
    assert "client" in err.headers.get("message", "").lower()
    assert c.wait_disconnected()


def test_client_id_used_by_one_connection_at_a_time(broker, stomp_factory):
    cid = unique("client")
    first = stomp_factory(broker, client_id=cid)
    second = stomp_factory(broker, connect=False)
    second.conn.connect(headers={"client-id": cid}, wait=False)
    assert second.listener.wait(lambda: bool(second.listener.errors) or second.listener.disconnected.is_set(), 5)
    assert not second.listener.connected_frames
    assert second.listener.errors and cid in second.listener.errors[0].headers.get("message", "")
    # The first connection is unaffected.
    q = qname()
    first.subscribe(q)
    first.send(q, "still mine")
    assert [m.body for m in first.expect_exactly(1)] == ["still mine"]


def test_no_local_skips_own_messages(broker, stomp_factory):
    t = tname("nolocal")
    a = stomp_factory(broker)
    a.subscribe(t, id="nl", headers={"activemq.noLocal": "true"})
    a.subscribe(t, id="all")
    b = stomp_factory(broker)
    a.send(t, "own")
    b.send(t, "other")
    got = a.expect_exactly(3)
    by_sub = {}
    for m in got:
        by_sub.setdefault(m.headers["subscription"], []).append(m.body)
    assert by_sub == {"nl": ["other"], "all": ["own", "other"]}


def test_durable_no_local_skips_messages_of_same_client_id(broker, stomp_factory):
    t = tname("dnl")
    cid = unique("client")
    s = stomp_factory(broker, client_id=cid)
    durable_subscribe(s, t, "nl", **{"activemq.noLocal": "true"})
    s.send(t, "own", persistent="true")
    other = stomp_factory(broker)
    other.send(t, "foreign", persistent="true")
    assert [m.body for m in s.expect_exactly(1)] == ["foreign"]


# ---------------------------------------------------------------------------
# Selectors
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_broker(tmp_path_factory):
    """One broker for the many read-only selector cases (each uses its own topic)."""
    b = Broker(tmp_path_factory.mktemp("selectors"), DEFAULT_ARGS)
    b.start()
    yield b
    b.stop()


SELECTOR_MESSAGES = [
    ("m1", {"color": "red", "price": "20", "qty": "5", "name": "apple", "region": "EU"}),
    ("m2", {"color": "blue", "price": "5", "qty": "50", "name": "banana", "region": "US"}),
    ("m3", {"color": "red", "price": "10", "qty": "0", "name": "a_b%"}),
    ("m4", {"color": "green", "price": "100.5", "name": "cherry", "priority": "8"}),
    ("m5", {"price": "-3", "name": "Apple"}),
    ("m6", {"color": "yellow", "price": "7", "qty": "1", "name": "axbz"}),
]

SELECTOR_CASES = [
    ("color = 'red'", ["m1", "m3"]),
    ("color <> 'red'", ["m2", "m4", "m6"]),
    ("color = 'RED'", []),
    ("price > 10", ["m1", "m4"]),
    ("price >= 10", ["m1", "m3", "m4"]),
    ("price < 10", ["m2", "m5", "m6"]),
    ("price <= 5", ["m2", "m5"]),
    ("price = 100.5", ["m4"]),
    ("price = 20", ["m1"]),
    ("price <> 20", ["m2", "m3", "m4", "m5", "m6"]),
    ("color = 'red' AND price > 10", ["m1"]),
    ("color = 'blue' OR price > 50", ["m2", "m4"]),
    ("NOT color = 'red'", ["m2", "m4", "m6"]),
    ("NOT (color = 'red' OR color = 'blue')", ["m4", "m6"]),
    ("(color = 'red' OR color = 'blue') AND NOT price = 10", ["m1", "m2"]),
    ("name LIKE 'a%'", ["m1", "m3", "m6"]),
    ("name LIKE '_pple'", ["m1", "m5"]),
    ("name NOT LIKE '%an%'", ["m1", "m3", "m4", "m5", "m6"]),
    ("name LIKE 'a_b%'", ["m3", "m6"]),
    ("name LIKE 'a\\_b\\%' ESCAPE '\\'", ["m3"]),
    ("name LIKE 'a!_b!%' ESCAPE '!'", ["m3"]),
    ("color IN ('red', 'green')", ["m1", "m3", "m4"]),
    ("color NOT IN ('red', 'green')", ["m2", "m6"]),
    ("price BETWEEN 5 AND 20", ["m1", "m2", "m3", "m6"]),
    ("price NOT BETWEEN 5 AND 20", ["m4", "m5"]),
    ("qty IS NULL", ["m4", "m5"]),
    ("qty IS NOT NULL", ["m1", "m2", "m3", "m6"]),
    ("color IS NULL", ["m5"]),
    ("price * qty > 90", ["m1", "m2"]),
    ("price + 1 = 21", ["m1"]),
    ("price - qty < 0", ["m2"]),
    ("qty / 5 = 10", ["m2"]),
    ("-price > 0", ["m5"]),
    ("region = 'EU' OR region IS NULL", ["m1", "m3", "m4", "m5", "m6"]),
    ("JMSPriority > 5", ["m4"]),
    ("JMSPriority = 4 AND color = 'red'", ["m1", "m3"]),
    ("nosuchheader = 'x'", []),
    ("TRUE", ["m1", "m2", "m3", "m4", "m5", "m6"]),
]


@pytest.mark.parametrize("selector,expected", SELECTOR_CASES, ids=[c[0] for c in SELECTOR_CASES])
def test_selector_on_topic(shared_broker, stomp_factory, selector, expected):
    t = tname("sel")
    c = stomp_factory(shared_broker)
    c.subscribe(t, id="sel", headers={"selector": selector})
    c.subscribe(t, id="all")
    p = stomp_factory(shared_broker)
    for tag, headers in SELECTOR_MESSAGES:
        p.send(t, tag, headers=dict(headers), receipt=(tag == "m6"))
    assert c.listener.wait(lambda: sum(1 for m in c.listener.messages if m.headers["subscription"] == "all") >= 6, 5)
    time.sleep(0.3)
    selected = [m.body for m in c.messages if m.headers["subscription"] == "sel"]
    assert selected == expected


def test_selectors_split_a_queue(broker, stomp_factory):
    q = qname("split")
    cheap = stomp_factory(broker)
    cheap.subscribe(q, headers={"selector": "price <= 10"})
    dear = stomp_factory(broker)
    dear.subscribe(q, headers={"selector": "price > 10"})
    p = stomp_factory(broker)
    for i, price in enumerate([5, 50, 10, 11, 2, 100]):
        p.send(q, f"item{i}", price=str(price))
    p.send(q, "unpriced")
    assert [m.body for m in cheap.expect_exactly(3)] == ["item0", "item2", "item4"]
    assert [m.body for m in dear.expect_exactly(3)] == ["item1", "item3", "item5"]
    # The message no selector matched stays in the queue.
    anyone = stomp_factory(broker)
    anyone.subscribe(q)
    assert [m.body for m in anyone.expect_exactly(1)] == ["unpriced"]


def test_selector_sees_standard_headers(broker, stomp_factory):
    t = tname("std")
    c = stomp_factory(broker)
    c.subscribe(t, id="corr", headers={"selector": "JMSCorrelationID = 'abc'"})
    c.subscribe(t, id="type", headers={"selector": "JMSType = 'invoice'"})
    c.subscribe(t, id="pers", headers={"selector": "JMSDeliveryMode = 'PERSISTENT'"})
    p = stomp_factory(broker)
    p.send(t, "one", headers={"correlation-id": "abc"})
    p.send(t, "two", headers={"type": "invoice"})
    p.send(t, "three", persistent="true")
    got = c.expect_exactly(3)
    assert sorted((m.headers["subscription"], m.body) for m in got) == [
        ("corr", "one"), ("pers", "three"), ("type", "two")]


@pytest.mark.parametrize(
    "selector",
    ["color = = 'red'", "price >", "name LIKE", "color IN ()", "color = 'unterminated", "AND price > 1",
     "price > 1 AND", "(color = 'red'"],
)
def test_invalid_selector_is_an_error(broker, raw_factory, stomp_factory, selector):
    bystander = stomp_factory(broker)
    raw = raw_factory(broker)
    raw.connect("1.2")
    raw.send_frame("SUBSCRIBE", {"destination": "/queue/" + unique("bad"), "id": "s", "selector": selector,
                                 "receipt": "sub"}, escape=True)
    error = raw.expect_error_and_close()
    assert "selector" in error.header("message").lower(), error
    assert error.header("receipt-id") == "sub"
    q = qname()
    bystander.subscribe(q)
    bystander.send(q, "fine")
    assert [m.body for m in bystander.expect_exactly(1)] == ["fine"]


# ---------------------------------------------------------------------------
# More redelivery and ordering cases
# ---------------------------------------------------------------------------


def test_unsubscribe_returns_unacked_messages(broker, stomp_factory):
    q = qname()
    c = stomp_factory(broker)
    c.subscribe(q, id="s1", ack="client-individual")
    c.send(q, "x1")
    c.send(q, "x2")
    first = c.expect_exactly(2)
    c.ack(first[0])
    c.unsubscribe("s1")
    c.subscribe(q, id="s1", ack="client-individual")  # the id may be used again
    (again,) = c.wait_messages(3)[2:]
    assert again.body == "x2"
    assert again.headers["redelivered"] == "true"
    assert again.headers["subscription"] == "s1"


def test_nacked_message_is_redelivered_before_later_ones(broker, stomp_factory):
    q = qname()
    p = stomp_factory(broker)
    for i in range(3):
        p.send(q, f"o{i}")
    c = stomp_factory(broker)
    c.subscribe(q, ack="client-individual", headers={"activemq.prefetchSize": "1"})
    (m0,) = c.expect_exactly(1)
    c.nack(m0)
    got = c.wait_messages(2)
    assert got[1].body == "o0" and got[1].headers["redelivered"] == "true"
    c.ack(got[1])
    got = c.wait_messages(3)
    assert got[2].body == "o1"


def test_cumulative_ack_covers_only_its_own_subscription(broker, stomp_factory):
    qa, qb = qname("a"), qname("b")
    c = stomp_factory(broker)
    c.subscribe(qa, id="A", ack="client")
    c.subscribe(qb, id="B", ack="client")
    c.send(qb, "b0")
    c.send(qa, "a0")
    c.send(qb, "b1")
    c.send(qa, "a1")
    msgs = c.expect_exactly(4)
    last_a = [m for m in msgs if m.headers["subscription"] == "A"][-1]
    c.ack(last_a)
    c.disconnect()
    d = stomp_factory(broker)
    d.subscribe(qa, id="A")
    d.subscribe(qb, id="B")
    got = d.expect_exactly(2)
    assert sorted(m.body for m in got) == ["b0", "b1"]


def test_transactional_ack_rolled_back_when_connection_closes(broker, stomp_factory):
    q = qname()
    c = stomp_factory(broker)
    c.subscribe(q, ack="client-individual")
    c.send(q, "txack", persistent="true")
    (m,) = c.expect_exactly(1)
    c.begin("never-committed")
    c.ack(m, transaction="never-committed")
    c.disconnect()
    d = stomp_factory(broker)
    d.subscribe(q)
    (again,) = d.expect_exactly(1)
    assert again.body == "txack" and again.headers["redelivered"] == "true"


def test_topic_subscription_prefetch(broker, stomp_factory):
    t = tname()
    c = stomp_factory(broker)
    c.subscribe(t, ack="client-individual", headers={"activemq.prefetchSize": "2"})
    p = stomp_factory(broker)
    for i in range(5):
        p.send(t, f"tp{i}")
    got = c.expect_exactly(2)
    c.ack(got[0])
    c.ack(got[1])
    got = c.expect_exactly(4)
    assert [m.body for m in got] == ["tp0", "tp1", "tp2", "tp3"]


def test_expired_durable_message_goes_to_dlq_with_topic_origin(broker, stomp_factory):
    name = unique("dexp")
    t = "/topic/" + name
    cid = unique("cid")
    s = stomp_factory(broker, client_id=cid)
    durable_subscribe(s, t, "d")
    s.disconnect()
    p = stomp_factory(broker)
    p.send(t, "short", persistent="true", expires=str(now_ms() + 200))
    p.send(t, "long", persistent="true")
    time.sleep(0.5)
    s2 = stomp_factory(broker, client_id=cid)
    durable_subscribe(s2, t, "d")
    assert [m.body for m in s2.expect_exactly(1)] == ["long"]
    d = stomp_factory(broker)
    d.subscribe(DLQ)
    (dead,) = d.expect_exactly(1)
    assert dead.body == "short"
    assert dead.headers["original-destination"] == f"topic://{name}"


def test_already_expired_persistent_message_is_dead_lettered(broker, stomp_factory):
    name = unique("late")
    q = "/queue/" + name
    c = stomp_factory(broker)
    c.subscribe(q)
    c.send(q, "born dead", persistent="true", expires=str(now_ms() - 1000))
    assert c.expect_exactly(0) == []
    d = stomp_factory(broker)
    d.subscribe(DLQ)
    (dead,) = d.expect_exactly(1)
    assert dead.body == "born dead"
    assert dead.headers["original-destination"] == f"queue://{name}"
    assert dead.headers["expires"] == "0", "a dead letter must not expire again"


MORE_SELECTOR_CASES = [
    ("price > 1e1", ["m1", "m4"]),
    ("price = 20.0", ["m1"]),
    ("price BETWEEN -5 AND 0", ["m5"]),
    ("qty IN ('5', '50')", ["m1", "m2"]),
    ("FALSE", []),
    ("color = 'red' OR FALSE", ["m1", "m3"]),
    ("color in ('red') and price between 1 and 15", ["m3"]),
    ("Color = 'red'", []),
    ("name > 5", []),
    ("name LIKE '%'", ["m1", "m2", "m3", "m4", "m5", "m6"]),
    ("NOT qty > 1", ["m3", "m6"]),
    ("qty > 1 OR qty IS NULL", ["m1", "m2", "m4", "m5"]),
]


@pytest.mark.parametrize("selector,expected", MORE_SELECTOR_CASES, ids=[c[0] for c in MORE_SELECTOR_CASES])
def test_more_selectors_on_topic(shared_broker, stomp_factory, selector, expected):
    test_selector_on_topic(shared_broker, stomp_factory, selector, expected)


def test_selector_string_literal_with_quote(broker, stomp_factory):
    t = tname("quote")
    c = stomp_factory(broker)
    c.subscribe(t, headers={"selector": "name = 'O''Brien'"})
    p = stomp_factory(broker)
    p.send(t, "irish", name="O'Brien")
    p.send(t, "other", name="OBrien")
    assert [m.body for m in c.expect_exactly(1)] == ["irish"]


@pytest.mark.parametrize("kind", ["temp-queue", "temp-topic"])
def test_temp_destination_survives_a_replier_that_disconnects(broker, stomp_factory, kind):
    """Request/reply with short-lived services: each service connection replies to the
    requester's temporary destination and leaves; the requester must keep getting replies."""
    requester = stomp_factory(broker)
    requester.subscribe(f"/{kind}/replies", id="replies")
    service_q = qname("svc")
    for i in range(3):
        requester.send(service_q, f"request{i}", headers={"reply-to": f"/{kind}/replies"})
        service = stomp_factory(broker)
        service.subscribe(service_q, ack="client-individual")
        (req,) = service.expect_exactly(1, settle=0.1)
        service.send(req.headers["reply-to"], f"reply{i}")
        service.ack(req)
        service.disconnect()
        got = requester.wait_messages(i + 1)
        assert got[i].body == f"reply{i}"


def test_expired_message_nobody_asked_for_is_swept_to_dlq(broker, stomp_factory):
    name = unique("sweep")
    p = stomp_factory(broker)
    p.send("/queue/" + name, "unwanted", persistent="true", expires=str(now_ms() + 100))
    d = stomp_factory(broker)
    d.subscribe(DLQ)
    (dead,) = d.expect_exactly(1, timeout=5)
    assert dead.body == "unwanted"
    assert dead.headers["original-destination"] == f"queue://{name}"


def test_mixed_persistence_keeps_send_order_for_live_consumer(broker, raw_factory, stomp_factory):
    q = qname("mixed")
    c = stomp_factory(broker)
    c.subscribe(q)
    raw = raw_factory(broker)
    raw.connect("1.2")
    frames = [encode_frame("SEND", {"destination": q, "persistent": "true" if i % 3 == 0 else "false"}, b"o%d" % i)
              for i in range(60)]
    raw.send(b"".join(frames) + encode_frame("SEND", {"destination": q, "receipt": "end"}, b"end"))
    raw.expect_receipt("end")
    got = c.expect_exactly(61)
    assert [m.body for m in got] == [f"o{i}" for i in range(60)] + ["end"]
