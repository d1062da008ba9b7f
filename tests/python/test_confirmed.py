"""A confirmed message is never lost (issue 17).

A message is confirmed when its SEND's RECEIPT arrives, or its COMMIT's
RECEIPT for a transaction. Every test here confirms messages and then proves,
with a positive signal, whether they were delivered: a consumer reads the
queue until a sentinel sent *after* the confirmations arrives, so whatever the
queue held before the sentinel has been seen.

* duplicate detection (``hawser-producer`` + ``hawser-seq``) must never drop a
  message that was not stored before: not a transaction's message committed
  after a later plain send of its producer, not a message of a producer id
  that another connection used;
* a sequence number above 2^63-1 is refused with an ERROR;
* producer flow control holds only the producers of the destination that is
  full, never those of unrelated destinations.

The randomized workload of the issue is in ``test_confirmed_workload.py``.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from conftest import HAWSER_BIN, HOST, RawClient, encode_frame, unique

SEQ_MAX = 2**63 - 1  # the highest sequence number the broker accepts
SENTINEL = b"sentinel"


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def connect(raw_factory, broker, client_id=None) -> RawClient:
    raw = raw_factory(broker)
    raw.connect("1.2", headers={"client-id": client_id} if client_id else None)
    return raw


def send_headers(queue, producer=None, seq=None, receipt=None, transaction=None) -> dict:
    """A persistent SEND's headers, with duplicate-detection headers if ``producer`` is given."""
    headers = {"destination": queue, "persistent": "true"}
    if transaction is not None:
        headers["transaction"] = transaction
    if producer is not None:
        headers["hawser-producer"] = producer
        headers["hawser-seq"] = str(seq)
    if receipt is not None:
        headers["receipt"] = receipt
    return headers


class Reader:
    """A consumer of one queue on its own raw connection (auto ack)."""

    def __init__(self, raw_factory, broker, queue):
        self.raw_factory = raw_factory
        self.broker = broker
        self.queue = queue
        self.raw = None
        self.bodies: list[bytes] = []

    def subscribe(self) -> "Reader":
        self.raw = connect(self.raw_factory, self.broker)
        self.raw.send_frame("SUBSCRIBE", {"destination": self.queue, "id": "r", "ack": "auto", "receipt": "sub"})
        self.raw.expect_receipt("sub")
        return self

    def until_sentinel(self, timeout: float = 5.0) -> list[bytes]:
        """Sends the sentinel from a connection of its own (confirmed), then returns every body
        the queue delivered before it: the sentinel's arrival proves nothing else is pending."""
        s = connect(self.raw_factory, self.broker)
        s.send_frame("SEND", send_headers(self.queue, receipt="sentinel"), SENTINEL)
        s.expect_receipt("sentinel")
        deadline = time.monotonic() + timeout
        for _ in range(10000):
            left = deadline - time.monotonic()
            assert left > 0, f"sentinel not delivered within {timeout}s; delivered before it: {self.bodies}"
            frame = self.raw.expect("MESSAGE", timeout=left)
            if frame.body == SENTINEL:
                return list(self.bodies)
            self.bodies.append(frame.body)
        raise AssertionError("until_sentinel loop bound reached")


def connect_when_free(raw_factory, broker, client_id, timeout: float = 5.0) -> RawClient:
    """Connects with ``client_id`` once the broker has noticed that its last connection is
    gone (until then it refuses the id as in use). Bounded by ``timeout``."""
    deadline = time.monotonic() + timeout
    last = None
    for _ in range(200):
        raw = raw_factory(broker)
        raw.send_frame("CONNECT", {"accept-version": "1.2", "host": "localhost", "client-id": client_id},
                       tolerant=True)
        try:
            last = raw.read_frame(2)
        except TimeoutError:
            last = "timeout"
        if getattr(last, "command", None) == "CONNECTED":
            raw.version = "1.2"
            return raw
        raw.close()
        if time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    raise AssertionError(f"client id {client_id} still refused after {timeout}s: {last}")


def next_frame(raw: RawClient, what: str, timeout: float = 5.0):
    try:
        frame = raw.read_frame(timeout)
    except TimeoutError:
        raise AssertionError(f"no frame within {timeout}s after {what}") from None
    assert frame is not None, f"connection closed without a frame after {what}"
    return frame


# ---------------------------------------------------------------------------
# 1. A transaction committed after a later plain send of its producer
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("restart", [False, True], ids=["live", "after-sigkill"])
def test_commit_after_later_plain_send_of_same_producer_delivers_both(broker, raw_factory, restart):
    """BEGIN; SEND seq 1 in the transaction; plain SEND seq 2 (receipt); COMMIT (receipt).
    Both are confirmed, so both must be delivered, each once (and survive a crash)."""
    q = "/queue/" + unique("txseq")
    p = connect(raw_factory, broker)
    p.send_frame("BEGIN", {"transaction": "tx1"})
    p.send_frame("SEND", send_headers(q, "p1", 1, transaction="tx1"), b"A")
    p.send_frame("SEND", send_headers(q, "p1", 2, receipt="rB"), b"B")
    p.expect_receipt("rB")
    p.send_frame("COMMIT", {"transaction": "tx1", "receipt": "rC"})
    p.expect_receipt("rC")
    if restart:
        p.close()
        broker.kill()
        broker.start()
    bodies = Reader(raw_factory, broker, q).subscribe().until_sentinel()
    assert sorted(bodies) == [b"A", b"B"], (
        f"A (confirmed by COMMIT RECEIPT rC) and B (RECEIPT rB) must each be delivered once; got {bodies}")


@pytest.mark.parametrize("ending", ["abort", "connection-lost"])
def test_sequence_of_a_transaction_that_never_committed_stays_free(broker, raw_factory, ending):
    """A transaction's message that was never committed was never stored: a later plain
    send with the same producer id and sequence (the producer's retry) must be stored."""
    q = "/queue/" + unique("txfree")
    client_id = unique("client")
    p = connect(raw_factory, broker, client_id)
    p.send_frame("BEGIN", {"transaction": "tx1"})
    p.send_frame("SEND", send_headers(q, "p1", 1, transaction="tx1", receipt="rA"), b"A-in-tx")
    p.expect_receipt("rA")
    if ending == "abort":
        p.send_frame("ABORT", {"transaction": "tx1", "receipt": "ra"})
        p.expect_receipt("ra")
    else:
        # A failover client: the connection vanishes with its transaction open; a new one
        # with the same client id sends the message again, outside a transaction.
        p.close()
        p = connect_when_free(raw_factory, broker, client_id)
    p.send_frame("SEND", send_headers(q, "p1", 1, receipt="r1"), b"A")
    p.expect_receipt("r1")
    p.send_frame("SEND", send_headers(q, "p1", 2, receipt="r2"), b"B")
    p.expect_receipt("r2")
    bodies = Reader(raw_factory, broker, q).subscribe().until_sentinel()
    assert bodies == [b"A", b"B"], (
        f"seq 1 sent again after its transaction ended uncommitted (RECEIPT r1) and seq 2 (RECEIPT r2) "
        f"must each be delivered once; got {bodies}")


# ---------------------------------------------------------------------------
# 2. Sequence numbers out of range; one producer id on two connections
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("seq, accepted", [(SEQ_MAX, True), (2**63, False), (2**64 - 1, False)],
                         ids=["2^63-1", "2^63", "2^64-1"])
def test_producer_seq_above_2_63_minus_1_is_refused(broker, raw_factory, seq, accepted):
    q = "/queue/" + unique("seqrange")
    reader = Reader(raw_factory, broker, q).subscribe()
    x = connect(raw_factory, broker)
    x.send_frame("SEND", send_headers(q, unique("prod"), seq, receipt="rX"), b"X")
    frame = next_frame(x, f"SEND with hawser-seq:{seq}")
    if accepted:
        assert frame.command == "RECEIPT" and frame.header("receipt-id") == "rX", frame
        assert reader.until_sentinel() == [b"X"]
        return
    assert frame.command == "ERROR", f"hawser-seq:{seq} is above 2^63-1: expected an ERROR, got {frame}"
    assert "hawser-seq" in (frame.header("message") or ""), frame
    assert x.read_until_closed(3) == []
    assert reader.until_sentinel() == [], "a refused SEND was delivered"


def send_on_two_connections(raw_factory, broker, x_client, y_client, x_seq):
    """X sends producer ``victim`` with ``x_seq`` and stays connected (unless refused); then Y
    sends ``victim`` seq 1 with RECEIPT rV. Returns X's and Y's answers and what was delivered."""
    q = "/queue/" + unique("victim")
    reader = Reader(raw_factory, broker, q).subscribe()
    x = connect(raw_factory, broker, x_client)
    x.send_frame("SEND", send_headers(q, "victim", x_seq, receipt="rX"), b"X")
    x_frame = next_frame(x, f"X's SEND with hawser-seq:{x_seq}")
    y = connect(raw_factory, broker, y_client)
    y.send_frame("SEND", send_headers(q, "victim", 1, receipt="rV"), b"V")
    y_frame = next_frame(y, "Y's SEND with hawser-seq:1")
    delivered = reader.until_sentinel()
    x_open = x.frames_for(0.05) == [] and not x.closed
    return x_frame, y_frame, delivered, x_open


def assert_confirmed_means_delivered(x_frame, y_frame, delivered):
    report = f"X got {x_frame}; Y got {y_frame}; delivered: {delivered}"
    if x_frame.command == "RECEIPT":
        assert b"X" in delivered, f"X's SEND was confirmed (RECEIPT rX) but never delivered. {report}"
    if y_frame.command == "RECEIPT":
        assert y_frame.header("receipt-id") == "rV", report
        assert b"V" in delivered, f"Y's SEND was confirmed (RECEIPT rV) but never delivered. {report}"
    else:
        assert y_frame.command == "ERROR", f"Y's SEND got neither RECEIPT rV nor ERROR. {report}"


@pytest.mark.parametrize("x_seq", [2**64 - 1, SEQ_MAX], ids=["x-seq-2^64-1", "x-seq-2^63-1"])
def test_producer_id_of_another_live_connection_without_client_id(broker, raw_factory, x_seq):
    """Neither connection has a client id. Y must get either its message delivered or an
    ERROR without RECEIPT rV: never a receipt for a message that is dropped."""
    x_frame, y_frame, delivered, x_open = send_on_two_connections(raw_factory, broker, None, None, x_seq)
    if x_seq == SEQ_MAX:
        assert x_frame.command == "RECEIPT" and x_open, f"X's valid SEND: {x_frame}; X still connected: {x_open}"
    assert_confirmed_means_delivered(x_frame, y_frame, delivered)


def test_producer_id_is_scoped_to_client_id(broker, raw_factory):
    """Different client ids: the same producer id names two producers, and both are stored."""
    x_frame, y_frame, delivered, x_open = send_on_two_connections(
        raw_factory, broker, unique("cx"), unique("cy"), SEQ_MAX)
    assert x_frame.command == "RECEIPT" and x_open, f"X's valid SEND: {x_frame}; X still connected: {x_open}"
    assert y_frame.command == "RECEIPT", f"Y (another client id) must be accepted: {y_frame}"
    assert_confirmed_means_delivered(x_frame, y_frame, delivered)
    assert sorted(delivered) == [b"V", b"X"], delivered


@pytest.mark.parametrize("restart", [False, True], ids=["reconnect", "reconnect-after-sigkill"])
def test_failover_reconnect_with_same_client_id_keeps_duplicate_detection(broker, raw_factory, restart):
    """X sends seq 1-3 and vanishes; Y, with X's client id (a failover client), sends seq 3
    again (its receipt was lost) and seq 4: the resend is confirmed and not stored twice."""
    q = "/queue/" + unique("failover")
    client_id = unique("client")
    x = connect(raw_factory, broker, client_id)
    for seq in (1, 2, 3):
        x.send_frame("SEND", send_headers(q, "victim", seq, receipt=f"x{seq}"), b"m%d" % seq)
        x.expect_receipt(f"x{seq}")
    x.close()
    if restart:
        broker.kill()
        broker.start()
    y = connect_when_free(raw_factory, broker, client_id)
    y.send_frame("SEND", send_headers(q, "victim", 3, receipt="again"), b"m3 again")
    y.expect_receipt("again")
    y.send_frame("SEND", send_headers(q, "victim", 4, receipt="y4"), b"m4")
    y.expect_receipt("y4")
    delivered = Reader(raw_factory, broker, q).subscribe().until_sentinel()
    assert delivered == [b"m1", b"m2", b"m3", b"m4"], delivered


# ---------------------------------------------------------------------------
# 3. Flow control holds only the producers of the destination that is full
# ---------------------------------------------------------------------------

FLOW_LIMIT_BYTES = 8 * 1024 * 1024
KIB = b"k" * 1024
FILL_BATCH = 64                      # sends pipelined before waiting for the last receipt
FILL_MAX = 4 * FLOW_LIMIT_BYTES // 1024   # 1 KiB sends before giving up on flow control
HELD_AFTER_S = 2.0                   # a batch's last receipt this late means the producer is held


def fill_until_held(raw: RawClient, queue: str) -> tuple[int, str]:
    """Pipelines non-persistent 1 KiB sends with receipts to ``queue`` until one is not
    confirmed within HELD_AFTER_S while the connection stays open (persistent ones would stay
    in the journal instead: test_paging.py). Returns (confirmed sends, held receipt)."""
    confirmed = 0
    for batch in range(FILL_MAX // FILL_BATCH):
        first = batch * FILL_BATCH
        ids = [f"f{first + i}" for i in range(FILL_BATCH)]
        raw.send(b"".join(encode_frame("SEND", {**send_headers(queue, receipt=r), "persistent": "false"}, KIB)
                          for r in ids))
        for r in ids:
            try:
                raw.expect_receipt(r, timeout=HELD_AFTER_S)
            except AssertionError:
                assert not raw.closed, f"producer's connection closed while filling {queue}: {list(raw.pending)}"
                assert not [f for f in raw.pending if f.command == "ERROR"], list(raw.pending)
                return confirmed, r
            confirmed += 1
    raise AssertionError(f"flow control never held the producer of {queue} after {confirmed} KiB "
                         f"(limit {FLOW_LIMIT_BYTES} bytes)")


def test_flow_control_never_holds_producers_of_unrelated_destinations(broker_factory, raw_factory, stomp_factory):
    # Non-persistent messages that never spill (max_temp_bytes 0): memory holds their producer.
    b = broker_factory("--max-pending-memory-bytes", str(FLOW_LIMIT_BYTES), "--max-temp-bytes", "0")
    big, other = "/queue/" + unique("big"), "/queue/" + unique("other")
    producer = connect(raw_factory, b)
    filled, held = fill_until_held(producer, big)
    # Still held a moment later, on an open connection: flow control, not a slow disk.
    assert producer.frames_for(0.5) == [] and not producer.closed, f"{held} was not held: {list(producer.pending)}"
    print(f"{big}: {filled} KiB confirmed, then {held} held")

    # A producer of another destination is not held: raw STOMP, then the CLI of the issue.
    p2 = connect(raw_factory, b)
    p2.send_frame("SEND", send_headers(other, receipt="other"), b"to another queue")
    try:
        p2.expect_receipt("other", timeout=5)
    except AssertionError as e:
        raise AssertionError(f"a send to {other} was held while only {big} is full "
                             f"({filled} KiB there): {e}") from None
    try:
        cli = subprocess.run(
            [HAWSER_BIN, "send", "--url", f"tcp://{HOST}:{b.port}", "-d", other, "--persistent",
             "--body", "from the cli"],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=5)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"`hawser send -d {other}` hung for 5 s while only {big} is full") from None
    assert cli.returncode == 0, cli.stderr

    # /queue/big's producer resumes once a consumer drains some of it.
    consumer = stomp_factory(b)
    consumer.subscribe(big, ack="auto")
    producer.expect_receipt(held, timeout=10)
    consumer.wait_messages(filled + 1, timeout=10)
    producer.send_frame("SEND", send_headers(big, receipt="after"), b"after the drain")
    producer.expect_receipt("after", timeout=5)
    reader = stomp_factory(b)
    reader.subscribe(other)
    reader.wait_messages(2)
    assert sorted(reader.bodies()) == ["from the cli", "to another queue"]
