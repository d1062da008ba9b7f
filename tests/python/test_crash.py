"""Crash safety: the broker is killed with SIGKILL again and again while
stomp-py producers send persistent messages with receipts and a consumer
acknowledges them with receipts.

What must hold after every kill and restart:
* every message whose RECEIPT the producer got is delivered (none lost);
* a message is delivered again only if its acknowledgement had not been
  confirmed (ACK receipt) when the broker died: duplicates are limited to
  messages delivered but not yet acknowledged at the crash.
"""

from __future__ import annotations

import random
import threading
import time

import pytest
import stomp

from conftest import HOST, unique, wait_until

KILLS = 6
WINDOW = 32
RECONNECT_ATTEMPTS = 200


class Producer(threading.Thread):
    """Sends numbered persistent messages with receipts, reconnecting after each crash.
    Unconfirmed sends are not resent: only confirmed ones are promised."""

    def __init__(self, port: int, destination: str, name: str):
        super().__init__(daemon=True)
        self.port = port
        self.destination = destination
        self.name_ = name
        self.confirmed: set[int] = set()
        self.sent = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.reconnects = 0

    def on_receipt(self, frame):
        rid = frame.headers.get("receipt-id", "")
        if rid.startswith(self.name_ + "-"):
            with self.lock:
                self.confirmed.add(int(rid.split("-")[-1]))

    def run(self):
        seq = 0
        attempts = 0
        while not self.stop.is_set() and attempts < RECONNECT_ATTEMPTS:
            attempts += 1
            conn = stomp.Connection([(HOST, self.port)], heartbeats=(0, 0), reconnect_attempts_max=1)
            listener = stomp.ConnectionListener()
            listener.on_receipt = self.on_receipt
            conn.set_listener("p", listener)
            try:
                conn.connect(wait=True)
            except Exception:
                time.sleep(0.05)
                continue
            self.reconnects += 1
            start_seq = seq
            try:
                while not self.stop.is_set():
                    with self.lock:
                        outstanding = (seq - start_seq) - sum(1 for s in range(start_seq, seq) if s in self.confirmed)
                    if outstanding >= WINDOW:
                        time.sleep(0.001)
                        if not conn.is_connected():
                            break
                        continue
                    conn.send(self.destination, body=f"{self.name_}:{seq}",
                              headers={"persistent": "true", "seq": str(seq), "producer": self.name_},
                              receipt=f"{self.name_}-{seq}")
                    seq += 1
                    self.sent = seq
            except Exception:
                pass
            finally:
                try:
                    conn.disconnect()
                except Exception:
                    pass
            time.sleep(0.05)


class Consumer(threading.Thread):
    """Acknowledges each message individually with a receipt, reconnecting after each crash."""

    def __init__(self, port: int, destination: str, ack_receipts: bool = True):
        super().__init__(daemon=True)
        self.port = port
        self.destination = destination
        self.ack_receipts = ack_receipts
        self.lock = threading.Lock()
        self.deliveries: list[tuple[str, int, float]] = []   # (producer, seq, when)
        self.ack_confirmed: dict[tuple[str, int], float] = {}
        self.stop = threading.Event()
        self.conn = None

    def on_message(self, frame):
        key = (frame.headers["producer"], int(frame.headers["seq"]))
        with self.lock:
            self.deliveries.append((key[0], key[1], time.monotonic()))
        try:
            receipt = f"ack|{key[0]}|{key[1]}" if self.ack_receipts else None
            self.conn.ack(frame.headers["message-id"], frame.headers["subscription"],
                          receipt=receipt)
        except Exception:
            pass

    def on_receipt(self, frame):
        rid = frame.headers.get("receipt-id", "")
        if rid.startswith("ack|"):
            _, producer, seq = rid.split("|")
            with self.lock:
                self.ack_confirmed.setdefault((producer, int(seq)), time.monotonic())

    def run(self):
        attempts = 0
        while not self.stop.is_set() and attempts < RECONNECT_ATTEMPTS:
            attempts += 1
            conn = stomp.Connection([(HOST, self.port)], heartbeats=(0, 0), reconnect_attempts_max=1)
            listener = stomp.ConnectionListener()
            listener.on_message = self.on_message
            listener.on_receipt = self.on_receipt
            conn.set_listener("c", listener)
            self.conn = conn
            try:
                conn.connect(wait=True)
                conn.subscribe(self.destination, id="crash", ack="client-individual",
                               headers={"activemq.prefetchSize": "100"})
            except Exception:
                time.sleep(0.05)
                continue
            while not self.stop.is_set() and conn.is_connected():
                time.sleep(0.02)
            try:
                conn.disconnect()
            except Exception:
                pass


@pytest.mark.parametrize("ack_receipts", [True, False], ids=["ack-receipts", "plain-acks"])
def test_sigkill_under_load_loses_no_receipted_message(broker_factory, ack_receipts):
    # Without ack receipts most sends are confirmed by their consumer's ack
    # before their fsync (confirm_consumed): that path must lose nothing either.
    broker = broker_factory("--segment-bytes", str(256 * 1024))
    destination = "/queue/" + unique("crash")
    producers = [Producer(broker.port, destination, f"p{i}") for i in range(2)]
    consumer = Consumer(broker.port, destination, ack_receipts)
    consumer.start()
    for p in producers:
        p.start()

    rng = random.Random(20261125)
    for _ in range(KILLS):
        time.sleep(rng.uniform(0.4, 1.2))
        broker.kill()
        broker.start()
    time.sleep(0.5)
    for p in producers:
        p.stop.set()
    for p in producers:
        p.join(timeout=10)

    confirmed = {(p.name_, s) for p in producers for s in p.confirmed}
    assert len(confirmed) > 300, f"too little traffic to prove anything: {len(confirmed)} confirmed"

    def delivered_keys():
        with consumer.lock:
            return {(p, s) for p, s, _ in consumer.deliveries}

    wait_until(lambda: confirmed <= delivered_keys(), timeout=30)
    consumer.stop.set()
    consumer.join(timeout=10)

    missing = confirmed - delivered_keys()
    assert not missing, f"{len(missing)} receipted messages lost, e.g. {sorted(missing)[:10]}"

    # A duplicate is allowed only if the message's ack had not been confirmed
    # before that redelivery happened.
    with consumer.lock:
        deliveries = list(consumer.deliveries)
        acked = dict(consumer.ack_confirmed)
    seen: dict[tuple[str, int], int] = {}
    violations = []
    for p, s, when in deliveries:
        key = (p, s)
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > 1 and key in acked and acked[key] < when:
            violations.append(key)
    duplicates = sum(n - 1 for n in seen.values())
    print(f"confirmed={len(confirmed)} delivered={len(deliveries)} duplicates={duplicates} "
          f"kills={KILLS} producer_sessions={[p.reconnects for p in producers]}")
    assert not violations, f"acknowledged messages delivered again: {violations[:10]}"
