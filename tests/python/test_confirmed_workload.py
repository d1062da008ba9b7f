"""A seeded, randomized workload with duplicate detection on (issue 17): no
confirmed message is lost, with or without the broker being killed.

Producers (stomp-py, one connection each, ``hawser-producer`` and
``hawser-seq`` on every SEND) mix plain persistent sends with receipts and
transactions of 1-4 sends, some with a plain send of the same producer in the
middle, some aborted. Consumers (stomp-py) acknowledge each message
individually, some acks with receipts, and NACK a few messages once. In the
SIGKILL variant the broker is killed every second or so and restarted; the
producers reconnect and send every unconfirmed plain SEND again with the same
producer id and sequence, as a failover client does (a transaction open or
uncommitted at the crash is rolled back and not sent again).

Every message body is ``<seed>/<producer>/<seq>``, so counting is exact. What
must hold:

* lost = 0: every message whose SEND or COMMIT got a RECEIPT is delivered;
* a message whose ACK was confirmed by a RECEIPT is never delivered again after
  that receipt arrived; for a producer connected with a client-id no second
  copy is either (its resends are recognised, producer ids being scoped by
  client-id), while a producer without one may see a resend after a
  reconnect stored again (its new connection is a new identity); without
  crashes a message is delivered once plus once per NACK;
* nothing of an aborted transaction is delivered, nothing unknown either.

Seeds: ``HAWSER_SEEDS=1,2,3`` reruns given seeds; otherwise each run draws
fresh ones and prints them. A seed fixes every random choice (operations,
acks, kill times); thread timing still varies between runs.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter, OrderedDict

import pytest
import stomp

from conftest import HOST, unique, wait_until

SEED_COUNT = 3
SEEDS = ([int(s) for s in os.environ["HAWSER_SEEDS"].split(",") if s.strip()]
         if os.environ.get("HAWSER_SEEDS") else
         [random.SystemRandom().randrange(2**32) for _ in range(SEED_COUNT)])

PRODUCERS = 3
CONSUMERS = 2
QUEUES = 2
WINDOW = 16                  # receipts a producer may wait for at once
PREFETCH = 20
WORK_S = 3.0                 # how long producers issue new operations (no-crash variant)
KILLS = 4                    # SIGKILLs per seed; with one NACK at most per message a message is
KILL_GAP_S = (0.7, 1.4)      # delivered at most 1 + 1 + KILLS = 6 times: below the dead-letter limit
AFTER_LAST_KILL_S = 1.0
DRAIN_S = 15.0               # producers' time to get their last receipts after they stop issuing
SENTINEL_S = 15.0            # time for the sentinels to reach the consumers
SETTLE_S = 3.0               # then time for redeliveries of NACKed messages
RECONNECT_ATTEMPTS = 400
CONNECT_RETRY_S = 0.05

P_TRANSACTION = 0.45
P_INTERLEAVE = 0.4           # a transaction with a plain send of its producer after its first send
P_ABORT = 0.15
P_NACK = 0.08                # only on a message's first delivery to this workload's consumers
P_ACK_RECEIPT = 0.5
P_NACK_RECEIPT = 0.5
P_CLIENT_ID = 0.5            # a producer connects with a client id (the same one after each crash)


def make_connection(port: int) -> stomp.Connection12:
    return stomp.Connection12([(HOST, port)], heartbeats=(0, 0), reconnect_attempts_max=1, timeout=5)


class Producer(threading.Thread):
    """Issues random operations with producer id and sequence numbers; after a lost connection
    it sends every unconfirmed plain SEND again, in sequence order, with the same headers."""

    def __init__(self, port: int, queues: list, seed: int, index: int):
        super().__init__(daemon=True, name=f"producer-{index}")
        self.port = port
        self.queues = queues
        self.seed = seed
        self.rng = random.Random(f"{seed}/producer/{index}")
        self.pid = f"s{seed}-p{index}"
        self.client_id = self.pid if self.rng.random() < P_CLIENT_ID else None
        self.lock = threading.Lock()
        self.next_seq = 1
        self.next_tx = 1
        # body -> kind ("plain", "tx", "tx-interleaved", "plain-in-tx"), of every message sent.
        self.kinds: dict[str, str] = {}
        self.confirmed: set[str] = set()
        self.never_committed: set[str] = set()    # aborted, or cut off by a crash before COMMIT
        self.uncertain: set[str] = set()          # COMMIT sent, its RECEIPT lost in a crash
        self.unconfirmed: OrderedDict = OrderedDict()  # seq -> (queue, body) of plain SENDs
        self.commits: dict[str, list] = {}        # COMMIT receipt id -> bodies
        self.aborts: set[str] = set()             # ABORT receipt ids
        self.errors: list = []
        self.sessions = 0
        self.resent = 0
        self.stop_issuing = threading.Event()
        self.give_up_at = float("inf")            # monotonic deadline, set when stopping

    # -- receipts (stomp-py's receiver thread) ----------------------------

    def on_receipt(self, frame):
        rid = frame.headers.get("receipt-id", "")
        with self.lock:
            if rid.startswith("m"):
                entry = self.unconfirmed.pop(int(rid[1:]), None)
                if entry is not None:
                    self.confirmed.add(entry[1])
            elif rid in self.commits:
                self.confirmed.update(self.commits.pop(rid))
            else:
                self.aborts.discard(rid)

    def on_error(self, frame):
        with self.lock:
            self.errors.append((frame.headers.get("message"), frame.body))

    def outstanding(self) -> int:
        with self.lock:
            return len(self.unconfirmed) + len(self.commits) + len(self.aborts)

    # -- sending ----------------------------------------------------------

    def _headers(self, seq: int) -> dict:
        return {"persistent": "true", "hawser-producer": self.pid, "hawser-seq": str(seq)}

    def _new_message(self, kind: str) -> tuple:
        seq = self.next_seq
        self.next_seq += 1
        body = f"{self.seed}/{self.pid}/{seq}"
        self.kinds[body] = kind
        return seq, body

    def _plain(self, conn, kind: str) -> None:
        queue = self.rng.choice(self.queues)
        with self.lock:
            seq, body = self._new_message(kind)
            self.unconfirmed[seq] = (queue, body)
        conn.send(queue, body, headers=self._headers(seq), receipt=f"m{seq}")

    def _transaction(self, conn) -> None:
        size = self.rng.randint(1, 4)
        interleave = self.rng.random() < P_INTERLEAVE
        abort = self.rng.random() < P_ABORT
        tx = f"tx{self.next_tx}"
        self.next_tx += 1
        bodies: list[str] = []
        commit_sent = False
        try:
            conn.begin(transaction=tx)
            for i in range(size):
                queue = self.rng.choice(self.queues)
                with self.lock:
                    seq, body = self._new_message("tx-interleaved" if interleave else "tx")
                    bodies.append(body)
                conn.send(queue, body, headers=self._headers(seq), transaction=tx)
                if i == 0 and interleave:
                    self._plain(conn, "plain-in-tx")
            if abort:
                with self.lock:
                    self.aborts.add(f"a{tx}")
                conn.abort(tx, receipt=f"a{tx}")
            else:
                with self.lock:
                    self.commits[f"c{tx}"] = bodies
                commit_sent = True
                conn.commit(transaction=tx, receipt=f"c{tx}")
        finally:
            # Never committed: must never be delivered. A COMMIT that may have reached the
            # broker without its RECEIPT coming back leaves its messages uncertain.
            with self.lock:
                if not commit_sent:
                    self.never_committed.update(bodies)

    def _connection_lost(self) -> None:
        with self.lock:
            for bodies in self.commits.values():
                self.uncertain.update(bodies)
            self.commits.clear()
            self.aborts.clear()

    def _resend(self, conn) -> None:
        with self.lock:
            pending = list(self.unconfirmed.items())
        for seq, (queue, body) in pending:
            conn.send(queue, body, headers=self._headers(seq), receipt=f"m{seq}")
            self.resent += 1

    def _finished(self) -> bool:
        return self.stop_issuing.is_set() and (self.outstanding() == 0 or time.monotonic() > self.give_up_at)

    def run(self):
        for _ in range(RECONNECT_ATTEMPTS):
            if self._finished():
                return
            conn = make_connection(self.port)
            listener = stomp.ConnectionListener()
            listener.on_receipt = self.on_receipt
            listener.on_error = self.on_error
            conn.set_listener("p", listener)
            try:
                conn.connect(wait=True, headers={"client-id": self.client_id} if self.client_id else {})
            except Exception:
                time.sleep(CONNECT_RETRY_S)
                continue
            self.sessions += 1
            try:
                self._resend(conn)
                for _ in range(10**7):
                    if not conn.is_connected() or self._finished():
                        break
                    if self.stop_issuing.is_set() or self.outstanding() >= WINDOW:
                        time.sleep(0.001)
                    elif self.rng.random() < P_TRANSACTION:
                        self._transaction(conn)
                    else:
                        self._plain(conn, "plain")
            except Exception:
                pass
            finally:
                self._connection_lost()
                try:
                    conn.disconnect()
                except Exception:
                    pass


class Consumers:
    """stomp-py consumers of every queue, acknowledging individually; reconnect after crashes."""

    def __init__(self, port: int, queues: list, seed: int):
        self.port = port
        self.queues = queues
        self.seed = seed
        self.lock = threading.Lock()
        self.deliveries: list[tuple[str, float, str]] = []  # (body, when, message-id)
        self.ack_confirmed: dict[str, float] = {}        # body -> when its ACK's RECEIPT came
        self.ack_confirmed_ids: dict[str, float] = {}    # message-id -> when its ACK's RECEIPT came
        self.nacked: Counter = Counter()
        self.acks = 0
        self.errors: list = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True, name=f"consumer-{i}")
                        for i in range(CONSUMERS)]
        self._receipt_n = 0
        self._receipt_bodies: dict[str, tuple[str, str]] = {}

    def start(self):
        for t in self.threads:
            t.start()

    def join(self, timeout: float):
        self.stop.set()
        for t in self.threads:
            t.join(timeout)

    def delivered(self) -> set:
        with self.lock:
            return {b for b, _, _ in self.deliveries}

    def _run(self, index: int):
        rng = random.Random(f"{self.seed}/consumer/{index}")
        for _ in range(RECONNECT_ATTEMPTS):
            if self.stop.is_set():
                return
            conn = make_connection(self.port)
            listener = stomp.ConnectionListener()
            listener.on_message = lambda frame, conn=conn: self._on_message(conn, rng, frame)
            listener.on_receipt = self._on_receipt
            listener.on_error = lambda frame: self.errors.append((frame.headers.get("message"), frame.body))
            conn.set_listener("c", listener)
            try:
                conn.connect(wait=True)
                for i, q in enumerate(self.queues):
                    conn.subscribe(q, id=f"s{i}", ack="client-individual",
                                   headers={"activemq.prefetchSize": str(PREFETCH)})
            except Exception:
                time.sleep(CONNECT_RETRY_S)
                continue
            for _ in range(10**6):
                if self.stop.is_set() or not conn.is_connected():
                    break
                time.sleep(0.02)
            try:
                conn.disconnect()
            except Exception:
                pass

    def _receipt_id(self, kind: str, body: str, message_id: str) -> str:
        self._receipt_n += 1
        rid = f"{kind}|{self._receipt_n}"
        self._receipt_bodies[rid] = (body, message_id)
        return rid

    def _on_message(self, conn, rng, frame):
        body = frame.body
        message_id = frame.headers.get("message-id", "")
        now = time.monotonic()
        with self.lock:
            self.deliveries.append((body, now, message_id))
            nack = self.nacked[body] == 0 and rng.random() < P_NACK
            if nack:
                self.nacked[body] += 1
                rid = self._receipt_id("nack", body, message_id) if rng.random() < P_NACK_RECEIPT else None
            else:
                self.acks += 1
                rid = self._receipt_id("ack", body, message_id) if rng.random() < P_ACK_RECEIPT else None
        try:
            if nack:
                conn.nack(frame.headers["ack"], receipt=rid)
            else:
                conn.ack(frame.headers["ack"], receipt=rid)
        except Exception:
            pass  # the connection is gone; the message comes again

    def _on_receipt(self, frame):
        rid = frame.headers.get("receipt-id", "")
        now = time.monotonic()
        with self.lock:
            found = self._receipt_bodies.pop(rid, None)
            if found is not None and rid.startswith("ack|"):
                body, message_id = found
                self.ack_confirmed.setdefault(body, now)
                self.ack_confirmed_ids.setdefault(message_id, now)


def send_sentinels(port: int, queues: list, seed: int) -> set:
    """One confirmed message per queue, sent after everything else."""
    bodies = {f"{seed}/sentinel/{i}" for i in range(len(queues))}
    conn = make_connection(port)
    listener = stomp.ConnectionListener()
    got: set = set()
    listener.on_receipt = lambda frame: got.add(frame.headers.get("receipt-id"))
    conn.set_listener("s", listener)
    conn.connect(wait=True)
    for i, q in enumerate(queues):
        conn.send(q, f"{seed}/sentinel/{i}", headers={"persistent": "true"}, receipt=f"sentinel{i}")
    assert wait_until(lambda: len(got) == len(queues), timeout=5), f"sentinels not confirmed: {got}"
    conn.disconnect()
    return bodies


def drive(broker, rng: random.Random, kill: bool) -> int:
    """Lets the workload run; with ``kill``, SIGKILLs and restarts the broker KILLS times.
    Returns the number of kills."""
    if not kill:
        time.sleep(WORK_S)
        return 0
    for _ in range(KILLS):
        time.sleep(rng.uniform(*KILL_GAP_S))
        broker.kill()
        broker.start()
    time.sleep(AFTER_LAST_KILL_S)
    return KILLS


def run_workload(broker, seed: int, kill: bool) -> None:
    rerun = f"rerun: HAWSER_SEEDS={seed} python3 -m pytest tests/python/{os.path.basename(__file__)} -k " \
            f"{'sigkill' if kill else 'no_crash'}"
    print(f"seed={seed} kill={kill} ({rerun})")
    rng = random.Random(f"{seed}/kills")
    queues = ["/queue/" + unique(f"work{i}") for i in range(QUEUES)]
    consumers = Consumers(broker.port, queues, seed)
    consumers.start()
    producers = [Producer(broker.port, queues, seed, i) for i in range(PRODUCERS)]
    for p in producers:
        p.start()

    try:
        kills = drive(broker, rng, kill)
    finally:
        give_up_at = time.monotonic() + DRAIN_S
        for p in producers:
            p.give_up_at = give_up_at
            p.stop_issuing.set()
    for p in producers:
        p.join(DRAIN_S + 5)
    assert not any(p.is_alive() for p in producers), "a producer thread did not finish"

    sentinels = send_sentinels(broker.port, queues, seed)
    sentinels_in = wait_until(lambda: sentinels <= consumers.delivered(), timeout=SENTINEL_S)
    confirmed = set().union(*(p.confirmed for p in producers))
    wait_until(lambda: confirmed <= consumers.delivered(), timeout=SETTLE_S)
    consumers.join(5)

    # ---- counting ----
    kinds = {b: k for p in producers for b, k in p.kinds.items()}
    aborted = set().union(*(p.never_committed for p in producers))
    uncertain = set().union(*(p.uncertain for p in producers))
    unconfirmed = {body for p in producers for _, body in p.unconfirmed.values()}
    with consumers.lock:
        deliveries = [(b, t, m) for b, t, m in consumers.deliveries if b not in sentinels]
        ack_confirmed = dict(consumers.ack_confirmed)
        ack_confirmed_ids = dict(consumers.ack_confirmed_ids)
        nacked = Counter(consumers.nacked)
    delivered = Counter(b for b, _, _ in deliveries)
    lost = sorted(confirmed - set(delivered), key=lambda b: (b.rsplit("/", 1)[0], int(b.rsplit("/", 1)[1])))
    scoped = {b for p in producers if p.client_id for b in p.kinds}
    # The same message again after its ack was confirmed: never. Another copy of
    # it (a resend stored again): never for a producer with a client-id.
    redelivered_after_ack = sorted(
        {b for b, t, m in deliveries if m in ack_confirmed_ids and ack_confirmed_ids[m] < t}
        | {b for b, t, _ in deliveries if b in scoped and b in ack_confirmed and ack_confirmed[b] < t})
    extra = {b: n - 1 - nacked[b] for b, n in delivered.items() if n - 1 - nacked[b] > 0}
    aborted_delivered = sorted(aborted & set(delivered))
    unknown = sorted(set(delivered) - set(kinds))
    errors = [e for p in producers for e in p.errors] + consumers.errors

    summary = (
        f"seed={seed} kills={kills} sent={len(kinds)} confirmed={len(confirmed)} lost={len(lost)} "
        f"delivered={len(delivered)} deliveries={len(deliveries)} duplicates={sum(extra.values())} "
        f"nacks={sum(nacked.values())} acks_with_receipt={len(ack_confirmed)} "
        f"never_committed={len(aborted)} uncertain={len(uncertain)} unconfirmed_at_end={len(unconfirmed)} "
        f"resent={sum(p.resent for p in producers)} sessions={[p.sessions for p in producers]} "
        f"client_ids={[p.client_id for p in producers]}")
    print(summary)
    lost_kinds = Counter(kinds[b] for b in lost)
    context = f"{summary}\n{rerun}"

    assert len(confirmed) >= 200, f"too little traffic to prove anything. {context}"
    assert not lost, (f"{len(lost)} of {len(confirmed)} confirmed messages never delivered "
                      f"(by kind: {dict(lost_kinds)}); first: {lost[:10]}. {context}")
    assert sentinels_in, f"sentinels not delivered within {SENTINEL_S}s. {context}"
    assert not redelivered_after_ack, (
        f"{len(redelivered_after_ack)} messages delivered again after their ACK's RECEIPT; first: "
        f"{redelivered_after_ack[:10]}. {context}")
    assert not aborted_delivered, (f"messages of transactions never committed (aborted or cut off) "
                                   f"delivered: {aborted_delivered[:10]}. {context}")
    assert not unknown, f"deliveries of messages never sent: {unknown[:10]}. {context}"
    assert not unconfirmed, (f"{len(unconfirmed)} sends still unconfirmed {DRAIN_S}s after the workload; "
                             f"first: {sorted(unconfirmed)[:10]}. {context}")
    if not kill:
        assert not errors, f"ERROR frames without any crash: {errors[:5]}. {context}"
        assert not uncertain, f"transactions cut off without any crash: {sorted(uncertain)[:10]}. {context}"
        assert not extra, (f"{len(extra)} messages delivered more often than once plus once per NACK "
                           f"without any crash; first: {sorted(extra.items())[:10]}. {context}")


@pytest.mark.parametrize("seed", SEEDS, ids=[f"seed{i}" for i in range(len(SEEDS))])
def test_no_crash_no_confirmed_message_lost(broker, seed):
    run_workload(broker, seed, kill=False)


@pytest.mark.parametrize("seed", SEEDS, ids=[f"seed{i}" for i in range(len(SEEDS))])
def test_sigkill_no_confirmed_message_lost(broker_factory, seed):
    run_workload(broker_factory("--segment-bytes", str(256 * 1024)), seed, kill=True)
