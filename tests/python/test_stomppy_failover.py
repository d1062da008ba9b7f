"""Failover with a client we did not write: stomp-py given two brokers.

Two independent brokers A and B (separate data directories, nothing shared). A
stomp-py producer sends persistent, numbered messages with receipts; a stomp-py
consumer (ack=client-individual) acknowledges each message with a receipt. The
broker the clients use is killed with SIGKILL and restarted, again and again.

How stomp-py (8.x and 9.x) fails over: when the socket breaks, its io thread
ends and calls ``on_disconnected``; it does not reconnect by itself. Its users
call ``connect()`` again from there, and ``connect()`` walks the
``host_and_ports`` list in order (``reconnect_attempts_max`` failures at most,
sleeping ``reconnect_sleep_*`` between passes) until one host accepts. The
subscription is not restored either: ``on_connected`` subscribes again. The
listener below does exactly that. Unconfirmed sends are not resent (stomp-py
has no such feature), so each numbered message lives on at most one broker.

At the end both brokers are drained by a consumer connected to each directly.

Checks: every message whose SEND receipt arrived was received at least once;
a message received more than once had not had its ACK confirmed (receipt
arrived) before the later delivery: a broker may redeliver only what it
delivered and did not see acknowledged.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Optional

import stomp
import stomp.exception

from conftest import HOST, unique

SEED = 0x5EED_5707
KILLS = 12
PAUSE = (0.3, 0.8)            # seconds between one kill and the next
WINDOW = 16                   # SEND receipts the producer waits for at most at once
CONNECTED_TIMEOUT = 10.0      # a client must be back on a broker within this after a kill
PROGRESS_TIMEOUT = 10.0       # and the producer must get a confirmation within this
DRAIN_IDLE = 1.0              # a drain ends after this long without a message
DRAIN_MAX = 20.0


class Ledger:
    """Everything the clients saw, with one event counter giving a total order."""

    def __init__(self):
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.clock = 0
        self.sent: set[int] = set()
        self.confirmed: dict[int, float] = {}        # seq -> monotonic time of its SEND receipt
        self.confirm_times: list[float] = []
        self.deliveries: dict[int, list[int]] = {}   # seq -> event numbers of its deliveries
        self.delivered_where: dict[int, list[str]] = {}
        self.ack_confirmed: dict[int, int] = {}      # seq -> event number of its first ACK receipt
        self.bad_bodies: list = []
        self.errors: list = []
        self.last_delivery = time.monotonic()

    def tick(self) -> int:
        self.clock += 1
        return self.clock

    def delivered(self, seq: int, where: str) -> None:
        with self.cond:
            self.deliveries.setdefault(seq, []).append(self.tick())
            self.delivered_where.setdefault(seq, []).append(where)
            self.last_delivery = time.monotonic()
            self.cond.notify_all()

    def ack_done(self, seq: int) -> None:
        with self.cond:
            self.ack_confirmed.setdefault(seq, self.tick())
            self.cond.notify_all()

    def send_done(self, seq: int) -> None:
        with self.cond:
            if seq not in self.confirmed:
                now = time.monotonic()
                self.confirmed[seq] = now
                self.confirm_times.append(now)
            self.cond.notify_all()

    def wait(self, cond, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not cond():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 0.05))
            return True


def parse_seq(body) -> Optional[int]:
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not body.startswith("m-"):
        return None
    try:
        return int(body[2:])
    except ValueError:
        return None


class Client(stomp.ConnectionListener):
    """A stomp-py connection over several brokers, reconnected and re-subscribed the way
    stomp-py's users do it: ``connect()`` again from ``on_disconnected``, subscribe in
    ``on_connected``."""

    def __init__(self, name: str, ports: list[int], ledger: Ledger, queue: Optional[str] = None,
                 reconnect: bool = True):
        self.name = name
        self.ledger = ledger
        self.queue = queue                 # set: this client consumes from it
        self.reconnect = reconnect
        self.conn = stomp.Connection12(
            [(HOST, p) for p in ports],
            reconnect_attempts_max=20,       # failed host attempts per connect() call
            reconnect_sleep_initial=0.05,
            reconnect_sleep_increase=0.5,
            reconnect_sleep_jitter=0.1,
            reconnect_sleep_max=0.5,
            heartbeats=(0, 0),
            timeout=2,
        )
        self.conn.set_listener(name, self)
        # Held while sending and while a broken connection is being replaced, so that
        # no SEND goes out on a new socket before its CONNECT.
        self.send_lock = threading.Lock()
        self.up = threading.Event()
        self.down = threading.Event()
        self.stopping = False
        self.generation = 0
        self.connects = 0
        self.disconnects = 0
        self.connect_failures: list[str] = []
        self.port: Optional[int] = None
        self.ports_used: list[int] = []
        self.down_at: Optional[float] = None
        self.outages: list[float] = []
        self.next_ack = 0
        self.acks: dict[str, int] = {}       # ACK receipt id -> seq
        self.on_send_receipt = None

    # -- connection ---------------------------------------------------------

    def start(self) -> None:
        self._connect()
        assert self.up.wait(CONNECTED_TIMEOUT), f"{self.name}: no CONNECTED; failures {self.connect_failures}"

    def _connect(self) -> bool:
        for _ in range(5):
            if self.stopping:
                return False
            try:
                self.conn.connect(wait=False, headers={"client-id": unique(self.name)})
                return True
            except stomp.exception.StompException as e:
                self.connect_failures.append(repr(e))
            except OSError as e:
                self.connect_failures.append(repr(e))
            time.sleep(0.1)
        return False

    def on_connected(self, frame):
        hp = self.conn.transport.current_host_and_port
        self.port = hp[1] if hp else None
        self.ports_used.append(self.port)
        self.connects += 1
        if self.down_at is not None:
            self.outages.append(time.monotonic() - self.down_at)
            self.down_at = None
        if self.queue is not None:
            self.conn.subscribe(self.queue, id="s", ack="client-individual")
        self.down.clear()
        self.up.set()

    def on_disconnected(self):
        with self.send_lock:
            self.up.clear()
            self.generation += 1
            self.disconnects += 1
            self.down_at = time.monotonic()
            self.port = None
            if self.stopping or not self.reconnect:
                self.down.set()
                return
            # As stomp-py users do: connect again; stomp-py tries each host in turn.
            if not self._connect():
                self.down.set()

    def on_error(self, frame):
        with self.ledger.cond:
            self.ledger.errors.append((self.name, frame.headers.get("message"), frame.body))

    def on_receipt(self, frame):
        rid = frame.headers.get("receipt-id", "")
        if rid.startswith("p-"):
            self.ledger.send_done(int(rid[2:]))
            if self.on_send_receipt:
                self.on_send_receipt(rid)
        elif rid in self.acks:
            self.ledger.ack_done(self.acks[rid])

    def on_message(self, frame):
        seq = parse_seq(frame.body)
        if seq is None:
            with self.ledger.cond:
                self.ledger.bad_bodies.append(frame.body)
        else:
            self.ledger.delivered(seq, f"{self.name}@{self.port}")
        self.next_ack += 1
        rid = f"a-{self.name}-{self.next_ack}"
        if seq is not None:
            self.acks[rid] = seq
        try:
            self.conn.ack(frame.headers["ack"], receipt=rid)
        except Exception:
            pass  # the connection broke: not acknowledged, so it may come again

    def close(self) -> None:
        """DISCONNECT with a receipt (all ACKs before it are processed), then the socket."""
        self.stopping = True
        if self.conn.is_connected():
            try:
                proto = next(c for c in type(self.conn).__mro__ if c.__name__.startswith("Protocol"))
                proto.disconnect(self.conn, receipt=f"bye-{self.name}")
            except Exception:
                pass
            self.down.wait(5.0)
        try:
            self.conn.transport.disconnect_socket()
        except Exception:
            pass


class Producer:
    """Sends m-1, m-2, ... with receipts, at most WINDOW unconfirmed on the current connection."""

    def __init__(self, client: Client, queue: str, ledger: Ledger):
        self.client = client
        self.queue = queue
        self.ledger = ledger
        self.stop = threading.Event()
        self.seq = 0
        self.in_flight: dict[str, int] = {}   # receipt id -> generation it was sent on
        self.lock = threading.Lock()
        self.send_errors = 0
        client.on_send_receipt = self._confirmed
        self.thread = threading.Thread(target=self.run, name="stomppy-producer", daemon=True)

    def _confirmed(self, rid: str) -> None:
        with self.lock:
            self.in_flight.pop(rid, None)

    def _window_open(self) -> bool:
        gen = self.client.generation
        with self.lock:
            return sum(1 for g in self.in_flight.values() if g == gen) < WINDOW

    def run(self) -> None:
        for _ in range(10_000_000):
            if self.stop.is_set():
                return
            if not self.client.up.wait(0.2):
                continue
            if not self.ledger.wait(lambda: self._window_open() or self.stop.is_set(), 0.5):
                continue
            with self.client.send_lock:
                if not self.client.up.is_set():
                    continue
                self.seq += 1
                rid = f"p-{self.seq}"
                with self.lock:
                    self.in_flight[rid] = self.client.generation
                with self.ledger.cond:
                    self.ledger.sent.add(self.seq)
                try:
                    self.client.conn.send(self.queue, f"m-{self.seq}",
                                          headers={"persistent": "true", "receipt": rid})
                except Exception:
                    self.send_errors += 1

    def unconfirmed_now(self) -> int:
        gen = self.client.generation
        with self.lock:
            return sum(1 for g in self.in_flight.values() if g == gen)


def test_stomppy_fails_over_between_two_brokers_through_repeated_kills(broker_factory):
    rng = random.Random(SEED)
    brokers = [broker_factory(), broker_factory()]
    by_port = {b.port: b for b in brokers}
    names = {brokers[0].port: "A", brokers[1].port: "B"}
    ports = [b.port for b in brokers]
    queue = "/queue/" + unique("stomppy-failover")
    ledger = Ledger()

    consumer = Client("consumer", ports, ledger, queue=queue)
    producer_client = Client("producer", ports, ledger)
    producer = Producer(producer_client, queue, ledger)
    drains: list[Client] = []
    kills: list[str] = []
    kill_times: list[float] = []
    try:
        consumer.start()
        producer_client.start()
        producer.thread.start()
        assert ledger.wait(lambda: len(ledger.confirmed) >= 20, PROGRESS_TIMEOUT), "producer made no progress"
        chaos_start = time.monotonic()

        for i in range(KILLS):
            time.sleep(rng.uniform(*PAUSE))
            # The broker the clients use: both are on the same one (checked below).
            assert producer_client.up.wait(CONNECTED_TIMEOUT), \
                f"kill {i}: producer not connected; failures {producer_client.connect_failures}"
            port = producer_client.port
            assert port in by_port, f"kill {i}: producer on unknown port {port}"
            target = by_port[port]
            other = next(b for b in brokers if b is not target)
            consumer_on = names.get(consumer.port, "-")
            confirmed_before = len(ledger.confirmed)
            producer_before, consumer_before = producer_client.connects, consumer.connects
            assert consumer_on == names[port], f"kill {i}: consumer was on {consumer_on}, producer on {names[port]}"
            kill_times.append(time.monotonic())
            target.kill()
            # stomp-py gets to the other broker while this one is down ...
            assert ledger.wait(lambda: producer_client.connects > producer_before
                               and consumer.connects > consumer_before, CONNECTED_TIMEOUT), \
                (f"kill {i}: not both reconnected (producer {producer_client.connects - producer_before}, "
                 f"consumer {consumer.connects - consumer_before}); failures "
                 f"{producer_client.connect_failures} {consumer.connect_failures}")
            landed = (names.get(producer_client.port, "-"), names.get(consumer.port, "-"))
            # ... and the killed one comes back for the next kill.
            target.start()
            assert ledger.wait(lambda: len(ledger.confirmed) > confirmed_before, PROGRESS_TIMEOUT), \
                f"kill {i}: no confirmation after reconnecting; errors {ledger.errors}"
            kills.append(f"{names[port]}->{landed[0]}/{landed[1]}")
            assert landed == (names[other.port],) * 2, f"kill {i}: killed {names[port]}, clients went to {landed}"
        chaos_end = time.monotonic()

        producer.stop.set()
        producer.thread.join(5.0)
        assert not producer.thread.is_alive(), "producer thread did not stop"
        ledger.wait(lambda: producer.unconfirmed_now() == 0, 3.0)
        # Let the consumer catch up with what is on its broker, then leave cleanly.
        ledger.wait(lambda: time.monotonic() - ledger.last_delivery > DRAIN_IDLE, DRAIN_MAX)
        producer_client.close()
        consumer.close()

        # Drain both brokers, each with a consumer connected to it directly.
        drained = {}
        for b in brokers:
            before = sum(len(v) for v in ledger.deliveries.values())
            d = Client(f"drain{names[b.port]}", [b.port], ledger, queue=queue, reconnect=False)
            drains.append(d)
            d.start()
            ledger.last_delivery = time.monotonic()
            ledger.wait(lambda: time.monotonic() - ledger.last_delivery > DRAIN_IDLE, DRAIN_MAX)
            d.close()
            drained[names[b.port]] = sum(len(v) for v in ledger.deliveries.values()) - before
    finally:
        producer.stop.set()
        for c in [producer_client, consumer, *drains]:
            c.stopping = True
            try:
                c.conn.transport.disconnect_socket()
            except Exception:
                pass
        producer.thread.join(5.0)

    with ledger.lock:
        sent = set(ledger.sent)
        confirmed = set(ledger.confirmed)
        deliveries = {k: list(v) for k, v in ledger.deliveries.items()}
        ack_confirmed = dict(ledger.ack_confirmed)
        times = sorted(t for t in ledger.confirm_times if chaos_start <= t <= chaos_end + 1.0)
    received = set(deliveries)
    lost = sorted(confirmed - received)
    dups = {s: v for s, v in deliveries.items() if len(v) > 1}
    bad_dups = {s: (v, ack_confirmed[s], ledger.delivered_where[s]) for s, v in dups.items()
                if s in ack_confirmed and any(ack_confirmed[s] < d for d in v[1:])}
    gaps = [b - a for a, b in zip(times, times[1:])]
    longest_gap = max(gaps) if gaps else float("nan")
    where = ""
    if gaps:
        gap_start = times[gaps.index(longest_gap)]
        before = [t for t in kill_times if t <= gap_start + longest_gap]
        if before:
            where = f" (ends {(gap_start + longest_gap - before[-1]) * 1000:.0f} ms after kill {len(before)})"
    outages = producer_client.outages

    print(f"\nstomp-py failover (seed {SEED:#x}): {len(kills)} kills in {chaos_end - chaos_start:.1f} s, "
          f"killed->producer/consumer went to: {' '.join(kills)}")
    print(f"  sent {len(sent)}, confirmed {len(confirmed)}, received {len(received)} distinct "
          f"({sum(len(v) for v in deliveries.values())} deliveries), ack-confirmed {len(ack_confirmed)}, "
          f"drained {drained}")
    print(f"  duplicates {len(dups)} (after a confirmed ack: {len(bad_dups)}); "
          f"unconfirmed but received {len(received - confirmed)}; lost confirmed {len(lost)}")
    print(f"  longest gap between producer confirmations {longest_gap * 1000:.0f} ms{where}; "
          f"producer reconnects {producer_client.connects - 1} (outage max "
          f"{max(outages) * 1000 if outages else 0:.0f} ms), consumer reconnects {consumer.connects - 1} (outage max "
          f"{max(consumer.outages) * 1000 if consumer.outages else 0:.0f} ms), "
          f"send errors {producer.send_errors}")

    assert len(kills) == KILLS
    assert not ledger.bad_bodies, f"bodies that are not ours: {ledger.bad_bodies[:5]}"
    assert received <= sent, f"received messages never sent: {sorted(received - sent)[:20]}"
    assert not ledger.errors, f"ERROR frames: {ledger.errors[:5]}"
    assert producer_client.connects - 1 == KILLS, "the producer should have reconnected once per kill"
    assert consumer.connects - 1 == KILLS, "the consumer should have reconnected once per kill"
    assert not lost, f"{len(lost)} confirmed messages never received: {lost[:20]}"
    assert not bad_dups, (f"{len(bad_dups)} messages redelivered after their ACK was confirmed "
                          f"(seq: deliveries, ack event, where): {dict(list(bad_dups.items())[:10])}")
