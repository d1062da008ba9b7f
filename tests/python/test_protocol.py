"""STOMP protocol conformance: versions, CONNECTED, MESSAGE headers, receipts,
escaping per version, bodies and heart-beats."""

import re
import time

import pytest

from conftest import encode_frame, now_ms, unique

MESSAGE_ID = re.compile(r"^ID:hawser-\d+$")


def connected_raw(raw_factory, broker, version="1.2", **headers):
    raw = raw_factory(broker)
    raw.connect(version, headers=headers or None)
    return raw


def raw_subscribe(raw, destination, sub_id, ack="auto", **headers):
    rid = f"sub-{sub_id}"
    hdrs = {"destination": destination, "id": sub_id, "ack": ack, "receipt": rid}
    hdrs.update(headers)
    raw.send_frame("SUBSCRIBE", hdrs, escape=True)
    raw.expect_receipt(rid)


def raw_send(raw, destination, body=b"", receipt="auto", **headers):
    hdrs = {"destination": destination}
    hdrs.update(headers)
    if receipt == "auto":
        receipt = unique("send")
    if receipt:
        hdrs["receipt"] = receipt
    raw.send_frame("SEND", hdrs, body, escape=True)
    if receipt:
        raw.expect_receipt(receipt)


# ---------------------------------------------------------------------------
# CONNECT / CONNECTED
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "accept,expected",
    [
        (None, "1.0"),
        ("1.0", "1.0"),
        ("1.1", "1.1"),
        ("1.2", "1.2"),
        ("1.0,1.1,1.2", "1.2"),
        ("1.2,1.1,1.0", "1.2"),
        ("1.0,1.1", "1.1"),
        ("1.1,2.0", "1.1"),
        ("1.0,1.1,1.2,2.0", "1.2"),
    ],
)
def test_connect_negotiates_highest_common_version(broker, raw_factory, accept, expected):
    raw = raw_factory(broker)
    connected = raw.connect(accept)
    assert connected.header("version") == expected
    assert connected.header("server", "").startswith("hawser/"), connected
    assert connected.header("session"), connected
    # Broker defaults: offers to send every 10 s and wants one every 10 s.
    assert connected.header("heart-beat") == "10000,10000"
    assert connected.body == b""
    # The connection is usable at that version.
    raw.send_frame("DISCONNECT", {"receipt": "bye"})
    assert raw.expect("RECEIPT").header("receipt-id") == "bye"
    assert raw.read_until_closed(3) == []


def test_stomp_command_connects_like_connect(broker, raw_factory):
    raw = raw_factory(broker)
    connected = raw.connect("1.2", command="STOMP")
    assert connected.header("version") == "1.2"
    assert connected.header("server", "").startswith("hawser/")


def test_sessions_are_distinct(broker, raw_factory):
    a = raw_factory(broker).connect("1.2")
    b = raw_factory(broker).connect("1.2")
    assert a.header("session") != b.header("session")


@pytest.mark.parametrize("accept", ["2.0", "0.9,2.1", "banana"])
def test_connect_without_common_version_is_refused(broker, raw_factory, accept):
    raw = raw_factory(broker)
    raw.send_frame("CONNECT", {"accept-version": accept, "host": "localhost"})
    error = raw.expect_error_and_close()
    assert "version" in error.header("message").lower(), error


def test_second_connect_is_an_error(broker, raw_factory):
    raw = connected_raw(raw_factory, broker)
    raw.send_frame("CONNECT", {"accept-version": "1.2", "host": "localhost"})
    raw.expect_error_and_close()


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_stomp_py_round_trip_each_version(broker, stomp_factory, version):
    """stomp-py at each protocol version: send, receive with client acks, nothing left over."""
    q = "/queue/" + unique("rt")
    c = stomp_factory(broker, version=version)
    connected = c.listener.connected_frames[0]
    assert connected.headers.get("version") == version
    ack_mode = "client" if version == "1.0" else "client-individual"
    c.subscribe(q, id="s1", ack=ack_mode)
    for i in range(3):
        c.send(q, f"hello {i} from {version}", headers={"x-num": str(i)})
    msgs = c.expect_exactly(3)
    assert [m.body for m in msgs] == [f"hello {i} from {version}" for i in range(3)]
    assert [m.headers["x-num"] for m in msgs] == ["0", "1", "2"]
    for m in msgs:
        assert m.headers["destination"] == q
        assert MESSAGE_ID.match(m.headers["message-id"]), m.headers
        assert "redelivered" not in m.headers
        c.ack(m)
    c.disconnect()
    # Everything was acknowledged: a new consumer gets only the next message.
    d = stomp_factory(broker, version=version)
    d.subscribe(q, id="s2", ack=ack_mode)
    d.send(q, "marker")
    got = d.expect_exactly(1)
    assert got[0].body == "marker"


# ---------------------------------------------------------------------------
# MESSAGE headers and bodies
# ---------------------------------------------------------------------------


def test_auto_ack_messages_carry_no_ack_header(broker, stomp_factory):
    # STOMP 1.2 asks for `ack` only on subscriptions that acknowledge.
    for dest in ("/queue/" + unique("auto"), "/topic/" + unique("auto")):
        c = stomp_factory(broker)
        c.subscribe(dest, id="sub-auto", ack="auto")
        c.send(dest, "x")
        (m,) = c.expect_exactly(1)
        assert "ack" not in m.headers, m.headers
        assert MESSAGE_ID.match(m.headers["message-id"]), m.headers


def test_message_headers_are_complete(broker, stomp_factory):
    q = "/queue/" + unique("hdr")
    c = stomp_factory(broker)
    c.subscribe(q, id="sub-hdr", ack="client-individual")
    before = now_ms()
    body = "the body ü"
    c.send(
        q,
        body,
        content_type="text/plain",
        headers={
            "persistent": "true",
            "priority": "7",
            "correlation-id": "corr-42",
            "reply-to": "/queue/replies",
            "x-custom": "custom value",
            "type": "order",
        },
    )
    after = now_ms()
    (m,) = c.expect_exactly(1)
    h = m.headers
    assert m.body == body
    assert h["subscription"] == "sub-hdr"
    assert MESSAGE_ID.match(h["message-id"]), h
    assert h["ack"] == h["message-id"]
    assert h["destination"] == q
    assert h["persistent"] == "true"
    assert h["priority"] == "7"
    assert h["expires"] == "0"
    assert before - 1000 <= int(h["timestamp"]) <= after + 1000, h
    assert "redelivered" not in h
    assert h["correlation-id"] == "corr-42"
    assert h["reply-to"] == "/queue/replies"
    assert h["x-custom"] == "custom value"
    assert h["type"] == "order"
    assert h["content-type"] == "text/plain"
    assert h["content-length"] == str(len(body.encode()))
    # The producer's transport headers are not passed on.
    assert "receipt" not in h
    assert "transaction" not in h


def test_non_persistent_message_headers(broker, raw_factory):
    q = "/queue/" + unique("np")
    raw = connected_raw(raw_factory, broker)
    raw_subscribe(raw, q, "s")
    raw_send(raw, q, b"plain")
    m = raw.expect("MESSAGE")
    assert m.header("persistent") is None, m
    assert m.header("priority") == "4", "JMS default priority"
    assert m.header("expires") == "0"
    assert m.header("content-length") == "5"
    assert m.body == b"plain"
    assert m.header("redelivered") is None


def test_message_ids_are_unique_and_increasing(broker, stomp_factory):
    q = "/queue/" + unique("ids")
    c = stomp_factory(broker)
    c.subscribe(q)
    for i in range(20):
        c.send(q, str(i), receipt=(i == 19))
    msgs = c.expect_exactly(20)
    ids = [int(m.headers["message-id"].split("-")[-1]) for m in msgs]
    assert len(set(ids)) == 20
    assert ids == sorted(ids)


def test_binary_body_with_nuls_round_trips_raw(broker, raw_factory):
    q = "/queue/" + unique("bin")
    body = bytes(range(256)) + b"\x00\x00end\x00" + bytes(range(255, -1, -1))
    raw = connected_raw(raw_factory, broker)
    raw_subscribe(raw, q, "s")
    raw_send(raw, q, body, **{"content-type": "application/octet-stream"})
    m = raw.expect("MESSAGE")
    assert m.header("content-length") == str(len(body))
    assert m.body == body


def test_binary_body_round_trips_stomp_py(broker, stomp_factory):
    q = "/queue/" + unique("bin")
    body = b"\x00\x01\xff\xfe\x00 binary \x00" * 50
    c = stomp_factory(broker, auto_decode=False)
    c.subscribe(q)
    c.send(q, body, headers={"persistent": "true"})
    (m,) = c.expect_exactly(1)
    assert m.body == body
    assert m.headers["content-length"] == str(len(body))


def test_body_without_content_length_ends_at_nul(broker, raw_factory):
    q = "/queue/" + unique("nocl")
    raw = connected_raw(raw_factory, broker)
    raw_subscribe(raw, q, "s")
    raw.send(encode_frame("SEND", {"destination": q, "receipt": "r"}, b"no length here", content_length=None))
    raw.expect_receipt("r")
    m = raw.expect("MESSAGE")
    assert m.body == b"no length here"
    assert m.header("content-length") == str(len(b"no length here"))


def test_empty_body(broker, raw_factory):
    q = "/queue/" + unique("empty")
    raw = connected_raw(raw_factory, broker)
    raw_subscribe(raw, q, "s")
    raw_send(raw, q, b"", marker="yes")
    m = raw.expect("MESSAGE")
    assert m.body == b""
    assert m.header("marker") == "yes"
    assert m.header("content-length") in (None, "0"), m


def test_large_body_round_trips(broker, stomp_factory):
    q = "/queue/" + unique("big")
    body = bytes((i * 7) % 256 for i in range(1_000_000))
    c = stomp_factory(broker, auto_decode=False)
    c.subscribe(q)
    c.send(q, body)
    (m,) = c.expect_exactly(1, timeout=10)
    assert m.body == body


def test_crlf_line_endings_are_accepted(broker, raw_factory):
    q = "/queue/" + unique("crlf")
    raw = connected_raw(raw_factory, broker)
    raw_subscribe(raw, q, "s")
    raw.send(f"SEND\r\ndestination:{q}\r\nreceipt:r1\r\nx-h:v\r\n\r\nbody\x00".encode())
    raw.expect_receipt("r1")
    m = raw.expect("MESSAGE")
    assert m.body == b"body"
    assert m.header("x-h") == "v"


def test_repeated_header_first_value_wins(broker, raw_factory):
    q = "/queue/" + unique("rep")
    raw = connected_raw(raw_factory, broker)
    raw_subscribe(raw, q, "s")
    raw.send_frame("SEND", [("destination", q), ("color", "red"), ("color", "blue"), ("receipt", "r")], b"x")
    raw.expect_receipt("r")
    m = raw.expect("MESSAGE")
    assert m.header("color") == "red"


# ---------------------------------------------------------------------------
# Receipts and errors
# ---------------------------------------------------------------------------


def test_receipt_for_every_client_frame(broker, raw_factory):
    q = "/queue/" + unique("rcpt")
    raw = connected_raw(raw_factory, broker)

    def roundtrip(command, headers, body=b""):
        rid = f"{command.lower()}-{unique('r')}"
        raw.send_frame(command, dict(headers, receipt=rid), body)
        frame = raw.expect_receipt(rid)
        assert frame.body == b""

    roundtrip("SUBSCRIBE", {"destination": q, "id": "s1", "ack": "client-individual"})
    roundtrip("SEND", {"destination": q}, b"one")
    m1 = raw.expect("MESSAGE")
    roundtrip("NACK", {"id": m1.header("ack")})
    m1again = raw.expect("MESSAGE")
    assert m1again.header("message-id") == m1.header("message-id")
    assert m1again.header("redelivered") == "true"
    roundtrip("ACK", {"id": m1again.header("ack")})
    roundtrip("BEGIN", {"transaction": "tx1"})
    roundtrip("SEND", {"destination": q, "transaction": "tx1"}, b"two")
    roundtrip("COMMIT", {"transaction": "tx1"})
    m2 = raw.expect("MESSAGE")
    assert m2.body == b"two"
    roundtrip("BEGIN", {"transaction": "tx2"})
    roundtrip("ACK", {"id": m2.header("ack"), "transaction": "tx2"})
    roundtrip("ABORT", {"transaction": "tx2"})
    m2again = raw.expect("MESSAGE")
    assert m2again.body == b"two" and m2again.header("redelivered") == "true"
    roundtrip("ACK", {"id": m2again.header("ack")})
    roundtrip("UNSUBSCRIBE", {"id": "s1"})
    raw.send_frame("DISCONNECT", {"receipt": "last"})
    frames = raw.read_until_closed(3)
    assert [f.command for f in frames] == ["RECEIPT"]
    assert frames[0].header("receipt-id") == "last"


def test_receipts_keep_frame_order(broker, raw_factory):
    q = "/queue/" + unique("order")
    raw = connected_raw(raw_factory, broker)
    data = b"".join(
        encode_frame("SEND", {"destination": q, "receipt": f"r{i}", "persistent": "true" if i % 2 else "false"},
                     b"m%d" % i)
        for i in range(50)
    )
    raw.send(data)
    got = [raw.expect("RECEIPT").header("receipt-id") for _ in range(50)]  # no subscription: only receipts
    assert got == [f"r{i}" for i in range(50)]


def test_error_carries_receipt_id_of_failing_frame(broker, raw_factory):
    raw = connected_raw(raw_factory, broker)
    raw.send_frame("COMMIT", {"transaction": "no-such-tx", "receipt": "commit-7"})
    error = raw.expect_error_and_close()
    assert error.header("receipt-id") == "commit-7"
    assert "no-such-tx" in error.header("message") or "transaction" in error.header("message").lower()


@pytest.mark.parametrize("destination", ["/foo/bar", "orders", "/queue/", "queue://orders"])
def test_send_to_unknown_destination_kind_is_an_error(broker, raw_factory, destination):
    raw = connected_raw(raw_factory, broker)
    raw.send_frame("SEND", {"destination": destination, "receipt": "r"}, b"x")
    error = raw.expect_error_and_close()
    assert error.header("receipt-id") == "r"
    assert "destination" in error.header("message").lower()


def test_subscribe_to_unknown_destination_kind_is_an_error(broker, raw_factory):
    raw = connected_raw(raw_factory, broker)
    raw.send_frame("SUBSCRIBE", {"destination": "/exchange/x", "id": "1"})
    raw.expect_error_and_close()


@pytest.mark.parametrize("command", ["SEND", "SUBSCRIBE"])
def test_missing_destination_is_an_error(broker, raw_factory, command):
    raw = connected_raw(raw_factory, broker)
    raw.send_frame(command, {"id": "1"}, b"x" if command == "SEND" else b"")
    error = raw.expect_error_and_close()
    assert "destination" in error.header("message")


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_subscribe_without_id_is_an_error_in_1_1_and_later(broker, raw_factory, version):
    raw = connected_raw(raw_factory, broker, version)
    raw.send_frame("SUBSCRIBE", {"destination": "/queue/" + unique("x")})
    error = raw.expect_error_and_close()
    assert "id" in error.header("message")


def test_subscribe_without_id_works_in_1_0(broker, raw_factory):
    q = "/queue/" + unique("v10")
    raw = raw_factory(broker)
    raw.connect(None)
    raw.send_frame("SUBSCRIBE", {"destination": q, "receipt": "s"})
    raw.expect_receipt("s")
    raw.send_frame("SEND", {"destination": q, "receipt": "sent"}, b"hi")
    raw.expect_receipt("sent")
    m = raw.expect("MESSAGE")
    assert m.body == b"hi"
    assert m.header("destination") == q
    assert m.header("subscription"), m
    # Unsubscribing by destination is how 1.0 clients without ids do it.
    raw.send_frame("UNSUBSCRIBE", {"destination": q, "receipt": "u"})
    raw.expect_receipt("u")
    raw.send_frame("SEND", {"destination": q, "receipt": "after"}, b"not for me")
    raw.expect_receipt("after")
    assert raw.frames_for(0.4) == []


def test_unsubscribe_stops_delivery(broker, stomp_factory):
    q = "/queue/" + unique("unsub")
    c = stomp_factory(broker)
    c.subscribe(q, id="a")
    c.send(q, "1")
    c.wait_messages(1)
    c.unsubscribe("a")
    c.send(q, "2")
    time.sleep(0.4)
    assert c.bodies() == ["1"]
    # The message stayed in the queue for the next consumer.
    d = stomp_factory(broker)
    d.subscribe(q)
    assert [m.body for m in d.expect_exactly(1)] == ["2"]


# ---------------------------------------------------------------------------
# Header escaping
# ---------------------------------------------------------------------------

TRICKY = "a:b\nc\\d"


@pytest.mark.parametrize("sender,receiver", [("1.2", "1.2"), ("1.1", "1.2"), ("1.2", "1.1"), ("1.1", "1.1")])
def test_header_escaping_across_versions(broker, raw_factory, sender, receiver):
    q = "/queue/" + unique("esc")
    rx = connected_raw(raw_factory, broker, receiver)
    raw_subscribe(rx, q, "s")
    tx = connected_raw(raw_factory, broker, sender)
    tx.send_frame("SEND", {"destination": q, "tricky": TRICKY, "receipt": "r"}, b"x", escape=True)
    tx.expect_receipt("r")
    m = rx.expect("MESSAGE")
    assert m.header("tricky") == TRICKY
    raw_value = dict(m.raw_headers)["tricky"]
    assert raw_value == "a\\cb\\nc\\\\d", f"on the wire: {raw_value!r}"


def test_carriage_return_escape_in_1_2(broker, raw_factory, stomp_factory):
    q = "/queue/" + unique("cr")
    rx = connected_raw(raw_factory, broker, "1.2")
    raw_subscribe(rx, q, "s")
    tx = connected_raw(raw_factory, broker, "1.2")
    tx.send(encode_frame("SEND", [("destination", q), ("cr", "one\\rtwo"), ("receipt", "r")], b"x"))
    tx.expect_receipt("r")
    m = rx.expect("MESSAGE")
    assert m.header("cr") == "one\rtwo"
    assert dict(m.raw_headers)["cr"] == "one\\rtwo"


def test_stomp_py_sees_unescaped_values(broker, stomp_factory):
    q = "/queue/" + unique("esc")
    c = stomp_factory(broker)
    c.subscribe(q)
    c.send(q, "x", headers={"tricky": TRICKY, "url": "http://example.invalid:8080/a"})
    (m,) = c.expect_exactly(1)
    assert m.headers["tricky"] == TRICKY
    assert m.headers["url"] == "http://example.invalid:8080/a"


def test_stomp_1_0_headers_are_not_escaped(broker, raw_factory):
    q = "/queue/" + unique("esc10")
    rx = raw_factory(broker)
    rx.connect(None)
    rx.send_frame("SUBSCRIBE", {"destination": q, "id": "s", "receipt": "s"})
    rx.expect_receipt("s")
    tx = raw_factory(broker)
    tx.connect(None)
    # In 1.0 a backslash is just a backslash and a value may contain colons.
    tx.send(encode_frame("SEND", [("destination", q), ("path", "C:\\dir\\n"), ("t", "12:30:00"), ("receipt", "r")], b"x"))
    tx.expect_receipt("r")
    m = rx.expect("MESSAGE")
    assert dict(m.raw_headers)["path"] == "C:\\dir\\n"
    assert dict(m.raw_headers)["t"] == "12:30:00"


def test_value_from_1_0_sender_is_escaped_for_1_2_receiver(broker, raw_factory):
    q = "/queue/" + unique("esc")
    rx = connected_raw(raw_factory, broker, "1.2")
    raw_subscribe(rx, q, "s")
    tx = raw_factory(broker)
    tx.connect(None)
    tx.send(encode_frame("SEND", [("destination", q), ("t", "12:30\\x"), ("receipt", "r")], b"x"))
    tx.expect_receipt("r")
    m = rx.expect("MESSAGE")
    assert m.header("t") == "12:30\\x"
    assert dict(m.raw_headers)["t"] == "12\\c30\\\\x"


# ---------------------------------------------------------------------------
# Heart-beats
# ---------------------------------------------------------------------------

HB_ARGS = ("--heartbeat-send-ms", "200", "--heartbeat-receive-ms", "200")


@pytest.fixture
def hb_broker(broker_factory):
    return broker_factory(*HB_ARGS)


def test_connected_advertises_configured_heart_beats(hb_broker, raw_factory):
    raw = raw_factory(hb_broker)
    connected = raw.connect("1.2", headers={"heart-beat": "0,0"})
    assert connected.header("heart-beat") == "200,200"


def test_broker_sends_heart_beats_when_idle(hb_broker, raw_factory):
    raw = raw_factory(hb_broker)
    raw.connect("1.2", headers={"heart-beat": "0,200"})
    start = time.monotonic()
    frames = raw.frames_for(1.2)
    assert frames == []
    assert not raw.closed
    # About every 200 ms: 6 in 1.2 s; allow slack for a loaded machine.
    assert 3 <= raw.heartbeats <= 12, raw.heartbeats
    gaps = [b - a for a, b in zip([start] + raw.heartbeat_times, raw.heartbeat_times)]
    assert max(gaps) < 0.8, gaps


def test_broker_sends_no_heart_beats_when_client_wants_none(hb_broker, raw_factory):
    raw = raw_factory(hb_broker)
    raw.connect("1.2", headers={"heart-beat": "0,0"})
    assert raw.frames_for(0.8) == []
    assert raw.heartbeats == 0
    assert not raw.closed


def test_heart_beat_interval_is_the_larger_of_both_sides(hb_broker, raw_factory):
    raw = raw_factory(hb_broker)
    raw.connect("1.2", headers={"heart-beat": "0,600"})
    raw.frames_for(1.0)
    # max(200, 600) = 600 ms: one beat, perhaps two, in a second; not five.
    assert 1 <= raw.heartbeats <= 2, raw.heartbeats


@pytest.mark.parametrize("heart_beat", ["200,0", "200,200"])
def test_silent_client_is_disconnected(hb_broker, raw_factory, stomp_factory, heart_beat):
    raw = raw_factory(hb_broker)
    raw.connect("1.2", headers={"heart-beat": heart_beat})
    start = time.monotonic()
    frames = raw.read_until_closed(timeout=3)
    elapsed = time.monotonic() - start
    # 1.5 x 200 ms allowed; the broker must not cut earlier than the interval nor wait much longer.
    assert 0.2 <= elapsed <= 1.2, elapsed
    assert all(f.command == "ERROR" for f in frames), frames
    # Other clients are unaffected.
    c = stomp_factory(hb_broker)
    q = "/queue/" + unique("alive")
    c.subscribe(q)
    c.send(q, "still here")
    assert c.expect_exactly(1)[0].body == "still here"


def test_broker_that_wants_no_heart_beats_does_not_time_out(broker_factory, raw_factory):
    b = broker_factory("--heartbeat-send-ms", "0", "--heartbeat-receive-ms", "0")
    raw = raw_factory(b)
    connected = raw.connect("1.2", headers={"heart-beat": "200,200"})
    assert connected.header("heart-beat") == "0,0"
    assert raw.frames_for(1.0) == []
    assert raw.heartbeats == 0 and not raw.closed


def test_client_sending_heart_beats_stays_connected(hb_broker, raw_factory):
    q = "/queue/" + unique("hb")
    raw = raw_factory(hb_broker)
    raw.connect("1.2", headers={"heart-beat": "200,0"})
    deadline = time.monotonic() + 1.5
    for _ in range(100):
        if time.monotonic() >= deadline:
            break
        raw.send(b"\n")
        assert raw.frames_for(0.1) == []
        assert not raw.closed, "broker closed a connection that sent heart-beats"
    raw_subscribe(raw, q, "s")
    raw_send(raw, q, b"after beats")
    assert raw.expect("MESSAGE").body == b"after beats"


def test_client_without_heart_beats_is_not_timed_out(hb_broker, raw_factory):
    raw = raw_factory(hb_broker)
    raw.connect("1.2", headers={"heart-beat": "0,0"})
    time.sleep(1.0)
    q = "/queue/" + unique("nohb")
    raw_subscribe(raw, q, "s")
    raw_send(raw, q, b"ok")
    assert raw.expect("MESSAGE").body == b"ok"


def test_stomp_py_with_heart_beats_stays_connected(hb_broker, stomp_factory):
    q = "/queue/" + unique("hbpy")
    c = stomp_factory(hb_broker, heartbeats=(200, 200))
    assert c.listener.connected_frames[0].headers["heart-beat"] == "200,200"
    time.sleep(1.5)
    assert c.connected
    assert c.listener.heartbeat_timeouts == 0
    c.subscribe(q)
    c.send(q, "alive")
    assert c.expect_exactly(1)[0].body == "alive"


def test_1_0_client_without_heart_beat_header_is_not_timed_out(hb_broker, raw_factory):
    """A 1.0 client never heard of heart-beats; without the header it must not be timed out."""
    raw = raw_factory(hb_broker)
    raw.connect(None)
    assert raw.frames_for(0.8) == []
    assert not raw.closed and raw.heartbeats == 0


# ---------------------------------------------------------------------------
# Framing details
# ---------------------------------------------------------------------------


def test_eols_between_frames_are_allowed(broker, raw_factory):
    q = "/queue/" + unique("eol")
    raw = connected_raw(raw_factory, broker)
    raw_subscribe(raw, q, "s")
    data = (encode_frame("SEND", {"destination": q}, b"one") + b"\n\r\n\n"
            + encode_frame("SEND", {"destination": q, "receipt": "two"}, b"two") + b"\n")
    raw.send(data)
    raw.expect_receipt("two")
    assert [raw.expect("MESSAGE").body for _ in range(2)] == [b"one", b"two"]


def test_header_values_keep_spaces_and_may_be_empty(broker, raw_factory):
    q = "/queue/" + unique("spaces")
    raw = connected_raw(raw_factory, broker)
    raw_subscribe(raw, q, "s")
    raw.send_frame("SEND", [("destination", q), ("padded", "  two sides  "), ("empty", ""), ("receipt", "r")], b"x")
    raw.expect_receipt("r")
    m = raw.expect("MESSAGE")
    assert m.header("padded") == "  two sides  "
    assert m.header("empty") == ""


def test_receipt_id_is_escaped_like_any_header(broker, raw_factory):
    raw = connected_raw(raw_factory, broker)
    raw.send_frame("BEGIN", {"transaction": "t", "receipt": "r:1\\2"}, escape=True)
    frame = raw.expect("RECEIPT")
    assert frame.header("receipt-id") == "r:1\\2"


def test_destination_names_with_colons_and_unicode(broker, stomp_factory):
    q = "/queue/über straße:" + unique("x")
    c = stomp_factory(broker)
    c.subscribe(q)
    c.send(q, "odd name")
    (m,) = c.expect_exactly(1)
    assert m.headers["destination"] == q


def test_overlong_destination_name_is_refused(broker, raw_factory):
    raw = connected_raw(raw_factory, broker)
    raw.send_frame("SEND", {"destination": "/queue/" + "a" * 2000}, b"x")
    error = raw.expect_error_and_close()
    assert "destination" in error.header("message").lower()


def test_newline_in_value_cannot_inject_headers_into_1_0_frames(broker, raw_factory):
    """STOMP 1.0 has no escapes: a 1.2 producer's value with a newline must not turn into
    extra header lines (here a second destination) in the frame a 1.0 consumer reads."""
    q = "/queue/" + unique("inject")
    rx = raw_factory(broker)
    rx.connect(None)
    rx.send_frame("SUBSCRIBE", {"destination": q, "id": "s", "receipt": "s"})
    rx.expect_receipt("s")
    tx = connected_raw(raw_factory, broker, "1.2")
    tx.send_frame("SEND", {"destination": q, "x": "1\ndestination:/queue/evil", "receipt": "r"}, b"body",
                  escape=True)
    tx.expect_receipt("r")
    m = rx.expect("MESSAGE")
    names = [k for k, _ in m.raw_headers]
    assert names.count("destination") == 1, m.raw_headers
    assert m.header("destination") == q
    assert m.body == b"body"
