"""Backlogs larger than memory (paging), with stomp-py, a client we did not write.

Non-persistent messages beyond memory spill to the journal (ActiveMQ's
temporary store) rather than hold their producer; no restart brings them
back, and a full temporary store (``--max-temp-bytes``) holds their producer.

A queue is filled far beyond the broker's memory limit with no consumer: the
producer is not held (the messages stay in the journal), the broker's memory
stays far below what was sent, and another queue is served at once
meanwhile. Then the backlog is drained by two consumers with selectors that
between them take every message, and the broker is killed with SIGKILL in
the middle of the drain. After the restart:

* every message whose RECEIPT the producer got is delivered;
* a message is delivered twice only if its ACK was not confirmed before the kill
  (and one whose ACK was sent without a RECEIPT may or may not come back);
* each consumer gets its messages highest priority first, and within a
  priority in the order they were sent.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import stomp

from conftest import HOST, unique, wait_until

MESSAGES = 24_000
BODY_BYTES = 1024
MEMORY_LIMIT = 1024 * 1024  # 1 MiB: the backlog is 24 times larger
PRIORITIES = (2, 5, 8)
WINDOW = 64
TIMEOUT = 120.0


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def headers_of(seq: int) -> dict:
    return {
        "persistent": "true",
        "priority": str(PRIORITIES[seq % len(PRIORITIES)]),
        "kind": "a" if seq % 2 == 0 else "b",
        "seq": str(seq),
    }


class Receipts(stomp.ConnectionListener):
    def __init__(self):
        self.cond = threading.Condition()
        self.ids: set[str] = set()
        self.errors: list = []

    def on_receipt(self, frame):
        with self.cond:
            self.ids.add(frame.headers["receipt-id"])
            self.cond.notify_all()

    def on_error(self, frame):
        with self.cond:
            self.errors.append(f"{frame.headers.get('message', '')} {frame.body}")
            self.cond.notify_all()


def fill(port: int, queue: str, count: int, other: str, probe, headers=headers_of) -> set[int]:
    """Sends ``count`` messages (``headers(seq)``, persistent by default)
    with receipts, at most WINDOW unconfirmed; calls ``probe`` every 4,000.
    Returns the confirmed seqs."""
    conn = stomp.Connection([(HOST, port)], heartbeats=(0, 0))
    listener = Receipts()
    conn.set_listener("r", listener)
    conn.connect(wait=True)
    confirmed: set[int] = set()
    deadline = time.monotonic() + TIMEOUT
    body = "x" * BODY_BYTES
    for seq in range(count):
        with listener.cond:
            ok = listener.cond.wait_for(
                lambda: len(listener.ids) >= seq - WINDOW or listener.errors,
                timeout=max(0.0, deadline - time.monotonic()),
            )
            assert ok and not listener.errors, f"producer held or refused at {seq}: {listener.errors}"
        conn.send(queue, body=body, headers=headers(seq), receipt=f"r-{seq}")
        if seq % 4000 == 3999:
            probe(seq)
    with listener.cond:
        assert listener.cond.wait_for(lambda: len(listener.ids) >= count, timeout=TIMEOUT), \
            f"only {len(listener.ids)} of {count} sends confirmed"
        confirmed = {int(r.split("-")[1]) for r in listener.ids}
    conn.disconnect()
    return confirmed


class Drainer(stomp.ConnectionListener):
    """Consumes ``queue`` with ``selector``, client-individual acks with receipts."""

    def __init__(self, port: int, queue: str, selector: str):
        self.cond = threading.Condition()
        self.deliveries: list[tuple[int, int, bool]] = []  # (seq, priority, redelivered)
        self.acked: set[int] = set()
        self.ack_sent: set[int] = set()
        self.pending: dict[str, int] = {}
        self.conn = stomp.Connection12([(HOST, port)], heartbeats=(0, 0))
        self.conn.set_listener("d", self)
        self.conn.connect(wait=True)
        self.conn.subscribe(queue, id="s", ack="client-individual",
                            headers={"selector": selector, "activemq.prefetchSize": "50"})

    def on_message(self, frame):
        seq = int(frame.headers["seq"])
        with self.cond:
            self.deliveries.append((seq, int(frame.headers["priority"]),
                                    frame.headers.get("redelivered") == "true"))
            rid = f"a-{seq}-{len(self.deliveries)}"
            self.pending[rid] = seq
            self.ack_sent.add(seq)
            self.cond.notify_all()
        try:
            self.conn.ack(frame.headers["ack"], receipt=rid)
        except Exception:
            pass

    def on_receipt(self, frame):
        with self.cond:
            seq = self.pending.pop(frame.headers["receipt-id"], None)
            if seq is not None:
                self.acked.add(seq)
            self.cond.notify_all()

    def wait(self, cond, timeout=TIMEOUT) -> bool:
        with self.cond:
            return self.cond.wait_for(cond, timeout=timeout)

    def close(self):
        try:
            self.conn.disconnect()
        except Exception:
            pass


def test_a_backlog_far_beyond_memory_survives_a_kill_and_drains_in_order(broker_factory, stomp_factory):
    b = broker_factory("--max-pending-memory-bytes", str(MEMORY_LIMIT))
    queue = f"/queue/{unique('backlog')}"
    other = f"/queue/{unique('other')}"
    watcher = stomp_factory(b)
    watcher.subscribe(other, ack="auto")

    def probe(seq: int):
        # Another queue is served at once while the backlog fills.
        before = len(watcher.messages)
        started = time.monotonic()
        watcher.send(other, body=f"probe-{seq}")
        watcher.wait_messages(before + 1, timeout=5.0)
        assert time.monotonic() - started < 5.0

    confirmed = fill(b.port, queue, MESSAGES, other, probe)
    assert len(confirmed) == MESSAGES
    sent_bytes = MESSAGES * BODY_BYTES
    rss = rss_bytes(b.pid)
    assert rss < sent_bytes, f"the broker holds the backlog in memory: RSS {rss} bytes"

    # Drain part of it with one consumer per kind, then kill the broker mid-drain.
    first = [Drainer(b.port, queue, "kind = 'a'"), Drainer(b.port, queue, "kind = 'b'")]
    assert wait_until(lambda: len(first[0].acked) + len(first[1].acked) >= MESSAGES // 4,
                      timeout=TIMEOUT, interval=0.05), "first drain stalled"
    b.kill()
    for d in first:
        d.close()
    acked_before = first[0].acked | first[1].acked
    # An ACK sent whose RECEIPT did not come may or may not have been written.
    maybe_acked = (first[0].ack_sent | first[1].ack_sent) - acked_before

    b.start()
    drainers = [Drainer(b.port, queue, "kind = 'a'"), Drainer(b.port, queue, "kind = 'b'")]
    remaining = confirmed - acked_before - maybe_acked
    try:
        ok = wait_until(lambda: remaining <= (drainers[0].acked | drainers[1].acked), timeout=TIMEOUT,
                        interval=0.2)
        got = drainers[0].acked | drainers[1].acked
        assert ok, f"{len(remaining - got)} confirmed messages never came back, e.g. {sorted(remaining - got)[:10]}"
        # Nothing extra arrives: what was acknowledged before the kill stays gone.
        time.sleep(0.5)
        for d in drainers:
            with d.cond:
                again = [s for s, _, _ in d.deliveries if s in acked_before]
            assert not again, f"acknowledged before the kill, delivered again: {again[:10]}"
            with d.cond:
                seqs = [s for s, _, _ in d.deliveries]
            assert len(seqs) == len(set(seqs)), "a message was delivered twice after the restart"
        # Highest priority first; within a priority, send order (redeliveries,
        # of what was unacknowledged at the kill, come first in their priority).
        for d in drainers:
            with d.cond:
                deliveries = list(d.deliveries)
            priorities = [p for _, p, _ in deliveries]
            assert priorities == sorted(priorities, reverse=True), "not highest priority first"
            for p in PRIORITIES:
                fresh = [s for s, q, redelivered in deliveries if q == p and not redelivered]
                assert fresh == sorted(fresh), f"priority {p} out of send order"
    finally:
        for d in drainers:
            d.close()


def mixed_headers(seq: int) -> dict:
    """One message in three persistent; STOMP's default is non-persistent."""
    h = headers_of(seq)
    if seq % 3 != 0:
        del h["persistent"]
    return h


def test_non_persistent_messages_beyond_memory_spill_and_no_restart_brings_them_back(broker_factory):
    b = broker_factory("--max-pending-memory-bytes", str(MEMORY_LIMIT))
    queue = f"/queue/{unique('spill')}"
    # The producer is not held: two thirds of the backlog are non-persistent.
    confirmed = fill(b.port, queue, MESSAGES, "", lambda seq: None, headers=mixed_headers)
    assert len(confirmed) == MESSAGES
    rss = rss_bytes(b.pid)
    assert rss < MESSAGES * BODY_BYTES, f"the broker holds the backlog in memory: RSS {rss} bytes"

    # A quarter drained, in order of priority then of sending, whatever the
    # delivery mode; then a crash.
    first = Drainer(b.port, queue, "kind = 'a' OR kind = 'b'")
    assert wait_until(lambda: len(first.acked) >= MESSAGES // 4, timeout=TIMEOUT, interval=0.05), \
        "first drain stalled"
    b.kill()
    first.close()
    with first.cond:
        deliveries = list(first.deliveries)
    priorities = [p for _, p, _ in deliveries]
    assert priorities == sorted(priorities, reverse=True), "not highest priority first"
    for p in PRIORITIES:
        seqs = [s for s, q, _ in deliveries if q == p]
        assert seqs == sorted(seqs), f"priority {p} out of send order"
    acked_before = set(first.acked)
    maybe_acked = first.ack_sent - acked_before

    # After the restart: every persistent message not acknowledged, and not
    # one non-persistent message (spilled or in memory at the kill).
    b.start()
    after = Drainer(b.port, queue, "kind = 'a' OR kind = 'b'")
    try:
        persistent = {s for s in confirmed if s % 3 == 0}
        remaining = persistent - acked_before - maybe_acked
        ok = wait_until(lambda: remaining <= after.acked, timeout=TIMEOUT, interval=0.2)
        assert ok, f"{len(remaining - after.acked)} confirmed persistent messages never came back"
        # Every delivery is in: the queue's depth says none is left.
        with after.cond:
            got = [s for s, _, _ in after.deliveries]
        assert all(s % 3 == 0 for s in got), \
            f"non-persistent messages came back after the restart: {[s for s in got if s % 3][:10]}"
        assert len(got) == len(set(got)), "a message was delivered twice after the restart"
    finally:
        after.close()


def test_a_full_temporary_store_holds_non_persistent_producers_until_it_drains(broker_factory, stomp_factory):
    temp_limit = 2 * 1024 * 1024
    b = broker_factory("--max-pending-memory-bytes", str(MEMORY_LIMIT),
                       "--max-temp-bytes", str(temp_limit), "--flow-control", "fail")
    queue = f"/queue/{unique('temp')}"
    conn = stomp.Connection([(HOST, b.port)], heartbeats=(0, 0))
    listener = Receipts()
    conn.set_listener("r", listener)
    conn.connect(wait=True)
    body = "x" * BODY_BYTES
    sent = 0
    try:
        # Memory, then the temporary store fill; then a send is refused
        # (flow control "fail": an ERROR rather than a held producer).
        limit = 4 * (MEMORY_LIMIT + temp_limit) // BODY_BYTES
        for seq in range(limit):
            conn.send(queue, body=body, headers={"seq": str(seq)}, receipt=f"r-{seq}")
            sent += 1
            with listener.cond:
                listener.cond.wait_for(lambda: f"r-{seq}" in listener.ids or listener.errors, timeout=10.0)
                if listener.errors:
                    break
        with listener.cond:
            errors = list(listener.errors)
            confirmed = len(listener.ids)
        assert errors, f"{sent} non-persistent sends of 1 KiB taken past a 2 MiB temporary store"
        assert "temporary store" in errors[0], errors[0]
        # Memory and the temporary store held about what their limits say.
        assert (MEMORY_LIMIT + temp_limit) // BODY_BYTES // 2 < confirmed \
            < 2 * (MEMORY_LIMIT + temp_limit) // BODY_BYTES, confirmed
        # A queue that does not spill takes non-persistent messages meanwhile:
        # the full temporary store holds only producers whose sends would go there.
        other = stomp_factory(b)
        other.send(f"/queue/{unique('other')}", body="not spilled", receipt=True)
    finally:
        try:
            conn.disconnect()
        except Exception:
            pass
    # A consumer drains it all, in order; then there is room again.
    c = stomp_factory(b)
    c.subscribe(queue, ack="auto")
    c.wait_messages(confirmed, timeout=TIMEOUT)
    seqs = [int(m.headers["seq"]) for m in c.messages]
    assert seqs == list(range(confirmed)), "not in send order"
    p = stomp_factory(b)
    p.send(queue, body="room again", receipt=True)
    c.wait_messages(confirmed + 1, timeout=10.0)
