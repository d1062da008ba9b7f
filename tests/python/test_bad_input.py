"""Malformed and hostile input, each on its own raw socket.

For every case the broker must send an ERROR frame with a ``message`` header
and close that connection, and nothing else may suffer: an already-connected
stomp-py client keeps sending and receiving, no part of the bad frame is
delivered, and persistent messages stored before are still there after a
restart.
"""

import time

import pytest

from conftest import encode_frame, unique

LIMIT_ARGS = ("--max-frame-bytes", "65536", "--max-headers", "10", "--max-header-bytes", "256")


class Guarded:
    """A broker with a stored persistent message and a working bystander client."""

    def __init__(self, broker, stomp_factory, raw_factory):
        self.broker = broker
        self._stomp = stomp_factory
        self._raw = raw_factory
        self.kept_queue = "/queue/" + unique("kept")
        self.target = "/queue/" + unique("target")  # where bad SENDs aim
        producer = stomp_factory(broker)
        producer.send(self.kept_queue, "keep-me", headers={"persistent": "true"})
        producer.disconnect()
        self.bystander = stomp_factory(broker)
        self.bystander_q = "/queue/" + unique("bystander")
        self.bystander.subscribe(self.bystander_q, id="by")
        self.watcher = stomp_factory(broker)
        self.watcher.subscribe(self.target, id="watch")
        self.rounds = 0

    def raw(self, connect=True, version="1.2"):
        raw = self._raw(self.broker)
        if connect:
            raw.connect(version)
        return raw

    def check_healthy(self):
        """The bystander still works and nothing of a bad frame reached the target queue."""
        self.rounds += 1
        body = f"still fine {self.rounds}"
        self.bystander.send(self.bystander_q, body)
        assert self.bystander.wait_messages(self.rounds)[-1].body == body
        assert self.bystander.connected
        assert self.watcher.messages == [], [m.body for m in self.watcher.messages]
        assert self.watcher.connected

    def check_persistent_after_restart(self):
        self.broker.restart()
        c = self._stomp(self.broker)
        c.subscribe(self.kept_queue)
        assert [m.body for m in c.expect_exactly(1)] == ["keep-me"]


@pytest.fixture
def guarded(broker_factory, stomp_factory, raw_factory):
    return Guarded(broker_factory(*LIMIT_ARGS), stomp_factory, raw_factory)


def send_frame(g):
    """A valid SEND to the watched queue, as bytes, for building bad variants."""
    return f"SEND\ndestination:{g.target}\n"


# Each case: (id, bytes sent after CONNECT 1.2, words of which one must be in the ERROR message).
BAD_AFTER_CONNECT = [
    ("binary-garbage", lambda g: b"\xde\xad\xbe\xef" * 16 + b"\n\n\x00", ["command"]),
    ("text-garbage", lambda g: b"hello, this is not stomp\n\n\x00", ["command"]),
    ("nul-line", lambda g: b"\x00\n\n\x00", ["command"]),
    ("header-without-colon", lambda g: (send_frame(g) + "nocolonhere\n\nbody\x00").encode(), ["header"]),
    ("header-empty-name", lambda g: (send_frame(g) + ":value\n\nbody\x00").encode(), ["header"]),
    ("unknown-command", lambda g: b"FOO\n\n\x00", ["command"]),
    ("lowercase-command", lambda g: f"send\ndestination:{g.target}\n\nx\x00".encode(), ["command"]),
    ("content-length-short", lambda g: (send_frame(g) + "content-length:2\n\nhello\x00").encode(), ["nul"]),
    ("content-length-negative", lambda g: (send_frame(g) + "content-length:-5\n\nhello\x00").encode(),
     ["content-length"]),
    ("content-length-text", lambda g: (send_frame(g) + "content-length:abc\n\nhello\x00").encode(),
     ["content-length"]),
    ("content-length-float", lambda g: (send_frame(g) + "content-length:1.5\n\nhello\x00").encode(),
     ["content-length"]),
    ("content-length-empty", lambda g: (send_frame(g) + "content-length:\n\nhello\x00").encode(),
     ["content-length"]),
    ("oversized-with-length", lambda g: encode_frame("SEND", {"destination": g.target}, b"x" * 100_000),
     ["exceed", "large", "limit"]),
    ("oversized-without-length",
     lambda g: encode_frame("SEND", {"destination": g.target}, b"x" * 100_000, content_length=None),
     ["exceed", "large", "limit"]),
    ("too-many-headers",
     lambda g: encode_frame("SEND", [("destination", g.target)] + [(f"h{i}", "v") for i in range(9)], b"x"),
     ["header"]),  # 11 with content-length
    ("content-length-huge", lambda g: (send_frame(g) + "content-length:999999999999\n\nx\x00").encode(),
     ["exceed", "large", "limit"]),
    ("content-length-overflow",
     lambda g: (send_frame(g) + "content-length:99999999999999999999999999\n\nx\x00").encode(),
     ["content-length", "exceed", "large"]),
    ("header-too-long", lambda g: encode_frame("SEND", {"destination": g.target, "big": "v" * 300}, b"x"),
     ["header", "exceed"]),
    ("header-line-too-long-no-eol", lambda g: (send_frame(g) + "big:" + "v" * 400).encode(), ["header", "exceed"]),
    ("ack-unknown-id", lambda g: b"ACK\nid:ID:hawser-999999999999\n\n\x00", ["message"]),
    ("ack-foreign-id", lambda g: b"ACK\nid:bogus\n\n\x00", ["message", "bogus"]),
    ("nack-unknown-id", lambda g: b"NACK\nid:ID:hawser-999999999999\n\n\x00", ["message"]),
    ("ack-without-id", lambda g: b"ACK\n\n\x00", ["id"]),
    ("commit-unknown-tx", lambda g: b"COMMIT\ntransaction:nope\n\n\x00", ["transaction", "nope"]),
    ("abort-unknown-tx", lambda g: b"ABORT\ntransaction:nope\n\n\x00", ["transaction", "nope"]),
    ("commit-without-tx", lambda g: b"COMMIT\n\n\x00", ["transaction"]),
    ("send-in-unknown-tx", lambda g: (send_frame(g) + "transaction:nope\n\nx\x00").encode(), ["transaction"]),
    ("invalid-utf8-value", lambda g: (send_frame(g)).encode() + b"x:\xff\xfe\n\nbody\x00", ["utf"]),
    ("invalid-utf8-name", lambda g: (send_frame(g)).encode() + b"\xc3(:v\n\nbody\x00", ["utf"]),
    ("invalid-escape-tab", lambda g: (send_frame(g) + "x:a\\tb\n\nbody\x00").encode(), ["escape"]),
    ("dangling-backslash", lambda g: (send_frame(g) + "x:ab\\\n\nbody\x00").encode(), ["escape"]),
    ("server-command-MESSAGE", lambda g: f"MESSAGE\ndestination:{g.target}\nmessage-id:1\n\nx\x00".encode(),
     ["message", "broker", "server"]),
    ("server-command-CONNECTED", lambda g: b"CONNECTED\nversion:1.2\n\n\x00", ["connected", "broker", "server"]),
    ("server-command-RECEIPT", lambda g: b"RECEIPT\nreceipt-id:1\n\n\x00", ["receipt", "broker", "server"]),
    ("server-command-ERROR", lambda g: b"ERROR\nmessage:hi\n\n\x00", ["error", "broker", "server"]),
    ("bad-ack-mode", lambda g: f"SUBSCRIBE\ndestination:{g.target}\nid:1\nack:sometimes\n\n\x00".encode(), ["ack"]),
    ("bad-prefetch", lambda g: f"SUBSCRIBE\ndestination:{g.target}\nid:1\nactivemq.prefetchSize:-1\n\n\x00".encode(),
     ["prefetch"]),
    ("bad-priority", lambda g: (send_frame(g) + "priority:high\n\nx\x00").encode(), ["priority"]),
    ("bad-expires", lambda g: (send_frame(g) + "expires:tomorrow\n\nx\x00").encode(), ["expires"]),
    ("control-char-destination", lambda g: b"SEND\ndestination:/queue/a\x01b\n\nx\x00", ["destination"]),
    ("unknown-subscription-unsubscribe", lambda g: b"UNSUBSCRIBE\nid:never-subscribed\n\n\x00",
     ["subscription", "never-subscribed"]),
]


@pytest.mark.parametrize("case", BAD_AFTER_CONNECT, ids=[c[0] for c in BAD_AFTER_CONNECT])
def test_bad_frame_after_connect(guarded, case):
    _, make, words = case
    raw = guarded.raw()
    raw.send(make(guarded), tolerant=True)
    error = raw.expect_error_and_close(timeout=5)
    message = error.header("message").lower()
    assert any(w in message for w in words), f"ERROR message {message!r} mentions none of {words}"
    guarded.check_healthy()


def test_bad_escape_defined_only_in_1_2_is_refused_in_1_1(guarded):
    raw = guarded.raw(version="1.1")
    raw.send((send_frame(guarded) + "x:a\\rb\n\nbody\x00").encode())
    error = raw.expect_error_and_close()
    assert "escape" in error.header("message").lower()
    guarded.check_healthy()


def test_error_includes_receipt_id_of_bad_frame(guarded):
    raw = guarded.raw()
    raw.send(b"ACK\nid:ID:hawser-424242424242\nreceipt:ack-77\n\n\x00")
    error = raw.expect_error_and_close()
    assert error.header("receipt-id") == "ack-77"
    guarded.check_healthy()


def test_ack_of_message_held_by_another_connection_is_refused(guarded, stomp_factory):
    q = "/queue/" + unique("held")
    holder = stomp_factory(guarded.broker)
    holder.subscribe(q, ack="client-individual")
    holder.send(q, "mine")
    (m,) = holder.wait_messages(1)
    raw = guarded.raw()
    raw.send_frame("ACK", {"id": m.headers["ack"]})
    raw.expect_error_and_close()
    # The holder can still acknowledge it, and it is gone afterwards.
    holder.ack(m)
    holder.disconnect()
    after = stomp_factory(guarded.broker)
    after.subscribe(q)
    assert after.expect_exactly(0, settle=0.3) == []
    guarded.check_healthy()


def test_ack_twice_is_refused(guarded):
    q = "/queue/" + unique("twice")
    raw = guarded.raw()
    raw.send_frame("SUBSCRIBE", {"destination": q, "id": "s", "ack": "client-individual", "receipt": "s"})
    raw.expect_receipt("s")
    raw.send_frame("SEND", {"destination": q}, b"once")
    m = raw.expect("MESSAGE")
    raw.send_frame("ACK", {"id": m.header("ack"), "receipt": "a1"})
    raw.expect_receipt("a1")
    raw.send_frame("ACK", {"id": m.header("ack"), "receipt": "a2"})
    error = raw.expect_error_and_close()
    assert error.header("receipt-id") == "a2"
    guarded.check_healthy()


@pytest.mark.parametrize(
    "frame",
    [
        lambda g: f"SEND\ndestination:{g.target}\n\nbefore connect\x00".encode(),
        lambda g: f"SUBSCRIBE\ndestination:{g.target}\nid:1\n\n\x00".encode(),
        lambda g: b"BEGIN\ntransaction:t\n\n\x00",
        lambda g: b"DISCONNECT\nreceipt:r\n\n\x00",
    ],
    ids=["SEND", "SUBSCRIBE", "BEGIN", "DISCONNECT"],
)
def test_frame_before_connect(guarded, frame):
    raw = guarded.raw(connect=False)
    raw.send(frame(guarded))
    error = raw.expect_error_and_close()
    assert "connect" in error.header("message").lower()
    guarded.check_healthy()


def test_bad_heart_beat_header_in_connect(guarded):
    raw = guarded.raw(connect=False)
    raw.send_frame("CONNECT", {"accept-version": "1.2", "host": "x", "heart-beat": "soon,later"})
    error = raw.expect_error_and_close()
    assert "heart-beat" in error.header("message").lower()
    guarded.check_healthy()


def test_content_length_longer_than_body_times_out(guarded):
    """The frame never ends: after --frame-timeout-ms 1000 the broker gives up on it."""
    raw = guarded.raw()
    raw.send((send_frame(guarded) + "content-length:100\n\nshort\x00").encode())
    start = time.monotonic()
    error = raw.expect_error_and_close(timeout=5)
    elapsed = time.monotonic() - start
    assert 0.8 <= elapsed <= 3.0, elapsed
    assert error.header("message")
    guarded.check_healthy()


@pytest.mark.parametrize(
    "partial",
    [
        lambda g: send_frame(g).encode(),
        lambda g: (send_frame(g) + "\nbody without nul").encode(),
        lambda g: b"SEN",
    ],
    ids=["headers-unfinished", "body-unfinished", "command-unfinished"],
)
def test_half_frame_then_stall(guarded, partial):
    raw = guarded.raw()
    raw.send(partial(guarded))
    start = time.monotonic()
    error = raw.expect_error_and_close(timeout=5)
    elapsed = time.monotonic() - start
    assert 0.8 <= elapsed <= 3.0, elapsed
    assert error.header("message")
    guarded.check_healthy()


def test_slow_but_steady_frame_is_not_cut(guarded):
    """A frame trickling in under the frame timeout per byte is fine if it completes in time."""
    q = "/queue/" + unique("slow")
    raw = guarded.raw()
    raw.send_frame("SUBSCRIBE", {"destination": q, "id": "s", "receipt": "s"})
    raw.expect_receipt("s")
    data = encode_frame("SEND", {"destination": q, "receipt": "slow"}, b"trickle")
    for i in range(0, len(data), 8):
        raw.send(data[i:i + 8])
        time.sleep(0.02)
    raw.expect_receipt("slow")
    assert raw.expect("MESSAGE").body == b"trickle"


def test_client_that_never_sends_connect_is_closed(guarded):
    raw = guarded.raw(connect=False)
    start = time.monotonic()
    frames = raw.read_until_closed(timeout=6)
    elapsed = time.monotonic() - start
    assert 1.5 <= elapsed <= 4.0, elapsed
    assert all(f.command == "ERROR" for f in frames), frames
    guarded.check_healthy()


def test_client_sending_only_heart_beats_before_connect_is_closed(guarded):
    raw = guarded.raw(connect=False)
    start = time.monotonic()
    for _ in range(30):
        if not raw.send(b"\n", tolerant=True) or raw.frames_for(0.1) or raw.closed:
            break
    frames = raw.read_until_closed(timeout=6)
    elapsed = time.monotonic() - start
    assert elapsed <= 4.0, elapsed
    assert all(f.command == "ERROR" for f in frames), frames
    guarded.check_healthy()


def test_limits_allow_frames_just_inside(guarded):
    """Positive controls for the limits used above: what fits is accepted and delivered intact."""
    q = "/queue/" + unique("inside")
    raw = guarded.raw()
    raw.send_frame("SUBSCRIBE", {"destination": q, "id": "s", "receipt": "s"})
    raw.expect_receipt("s")
    big = bytes(i % 251 for i in range(60_000))
    raw.send_frame("SEND", {"destination": q, "receipt": "big"}, big)
    raw.expect_receipt("big")
    assert raw.expect("MESSAGE").body == big
    headers = [("destination", q), ("receipt", "many")] + [(f"h{i}", str(i)) for i in range(7)]
    raw.send_frame("SEND", headers, b"x")  # 9 headers + content-length = 10
    raw.expect_receipt("many")
    m = raw.expect("MESSAGE")
    assert [m.header(f"h{i}") for i in range(7)] == [str(i) for i in range(7)]
    raw.send_frame("SEND", {"destination": q, "receipt": "long", "long": "v" * 200}, b"x")
    raw.expect_receipt("long")
    assert raw.expect("MESSAGE").header("long") == "v" * 200
    guarded.check_healthy()


def test_many_bad_clients_then_restart_keeps_persistent_messages(guarded):
    """Every kind of bad input against one broker, then a restart: the stored message survives."""
    for _, make, _ in BAD_AFTER_CONNECT:
        raw = guarded.raw()
        raw.send(make(guarded), tolerant=True)
        raw.expect_error_and_close(timeout=5)
        raw.close()
    guarded.check_healthy()
    guarded.check_persistent_after_restart()


def test_connection_reset_mid_frame_is_harmless(guarded):
    import socket
    import struct

    raw = guarded.raw()
    raw.send((send_frame(guarded) + "content-length:1000\n\npartial").encode())
    # RST instead of FIN.
    raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    raw.close()
    time.sleep(0.2)
    guarded.check_healthy()
    guarded.check_persistent_after_restart()


def test_nul_in_header_value_does_not_corrupt_consumers(guarded, stomp_factory):
    """A header value with a NUL byte (empty body, so no content-length on the MESSAGE):
    the broker must refuse it or deliver it so that a stomp-py consumer still parses
    every frame correctly. It must never cut the consumer's stream in two."""
    q = "/queue/" + unique("nul")
    consumer = stomp_factory(guarded.broker)
    consumer.subscribe(q)
    raw = guarded.raw()
    raw.send(f"SEND\ndestination:{q}\nx:a".encode() + b"\x00" + b"b\nreceipt:r\n\n\x00")
    frames = raw.frames_for(1.0)
    refused = any(f.command == "ERROR" for f in frames)
    consumer.send(q, "after")
    got = consumer.wait_messages(1 if refused else 2)
    time.sleep(0.3)
    got = consumer.messages
    assert got[-1].body == "after", [(m.headers, m.body) for m in got]
    if not refused:
        assert len(got) == 2 and got[0].headers.get("x") == "a\x00b", [(m.headers, m.body) for m in got]
    assert consumer.connected
    guarded.check_healthy()


def frame_of_length(destination, total, receipt="edge"):
    """A SEND frame of exactly ``total`` bytes, NUL included."""
    head = encode_frame("SEND", {"destination": destination, "receipt": receipt}, b"", content_length=None)
    fixed = len(head) + len("content-length:") + 1  # +1 for the header's LF
    for digits in range(1, 8):
        body_len = total - fixed - digits
        if len(str(body_len)) == digits:
            frame = encode_frame("SEND", {"destination": destination, "receipt": receipt}, b"b" * body_len)
            assert len(frame) == total
            return frame
    raise AssertionError("cannot build frame")


@pytest.mark.parametrize("over", [False, True], ids=["exactly-at-limit", "one-byte-over"])
def test_frame_size_limit_boundary(guarded, over):
    q = "/queue/" + unique("edge")
    raw = guarded.raw()
    raw.send(frame_of_length(q, 65536 + int(over)), tolerant=True)
    if over:
        raw.expect_error_and_close()
    else:
        raw.expect_receipt("edge")
    guarded.check_healthy()


@pytest.mark.parametrize("over", [False, True], ids=["exactly-at-limit", "one-over"])
def test_header_count_limit_boundary(guarded, over):
    q = "/queue/" + unique("edge")
    raw = guarded.raw()
    # destination + receipt + extras + content-length
    extras = [(f"h{i}", "v") for i in range(7 + int(over))]
    raw.send_frame("SEND", [("destination", q), ("receipt", "edge")] + extras, b"x")
    if over:
        raw.expect_error_and_close()
    else:
        raw.expect_receipt("edge")
    guarded.check_healthy()


@pytest.mark.parametrize("over", [False, True], ids=["exactly-at-limit", "one-byte-over"])
def test_header_line_limit_boundary(guarded, over):
    q = "/queue/" + unique("edge")
    raw = guarded.raw()
    value = "v" * (256 - len("long:") + int(over))
    raw.send_frame("SEND", {"destination": q, "receipt": "edge", "long": value}, b"x")
    if over:
        raw.expect_error_and_close()
    else:
        raw.expect_receipt("edge")
    guarded.check_healthy()


def test_impossible_content_length_fails_at_once(guarded):
    """A content-length over the frame limit is refused when the header arrives, not after a timeout."""
    raw = guarded.raw()
    raw.send((send_frame(guarded) + "content-length:1000000\n\n").encode())
    start = time.monotonic()
    raw.expect_error_and_close(timeout=5)
    assert time.monotonic() - start < 0.5
    guarded.check_healthy()
