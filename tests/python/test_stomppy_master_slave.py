"""Master/slave on a shared store with a client we did not write: stomp-py.

Three ``hawser serve --ha shared-store`` processes share one data directory: one
master serves STOMP, the two standbys open no STOMP listener. stomp-py is given
all three ports (it walks its ``host_and_ports`` list on ``connect()``, and a
standby refuses the TCP connection, so it lands on the master). The master is
killed with SIGKILL again and again and restarted as a standby; a standby takes
over the store each time.

Checks: every message whose SEND receipt arrived is received (all of them live
in the one store, so one consumer drains them from whichever broker is master);
no message is delivered again after its ACK was confirmed; after every kill both
clients are back and the producer makes progress.
"""

from __future__ import annotations

import json
import random
import subprocess
import time

from conftest import HAWSER_BIN, HOST, free_port, unique
from test_stomppy_failover import (CONNECTED_TIMEOUT, DRAIN_IDLE, DRAIN_MAX, PROGRESS_TIMEOUT, Client, Ledger,
                                   Producer)

SEED = 0x5EED_3A57
KILLS = 10
PAUSE = (0.3, 0.7)
START_TIMEOUT = 20.0


class SharedBroker:
    """One broker of a shared store; started once its status endpoint answers."""

    def __init__(self, workdir, data_dir, name: str, extra: tuple = ()):
        self.extra = tuple(extra)
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        self.name = name
        self.port = free_port()
        # Kept across restarts, as the STOMP port: clients list both in their URIs.
        self.openwire_port = free_port()
        self.status_port = free_port()
        self.proc = None
        self.starts = 0

    def start(self) -> "SharedBroker":
        assert self.proc is None or self.proc.poll() is not None
        self.starts += 1
        log = open(self.workdir / f"broker-{self.starts}.log", "wb")
        self.proc = subprocess.Popen(
            [HAWSER_BIN, "serve", "--data-dir", str(self.data_dir), "--stomp", f"{HOST}:{self.port}",
             "--openwire", f"{HOST}:{self.openwire_port}", "--ha", "shared-store", "--ha-poll-ms", "20", "--status", f"{HOST}:{self.status_port}",
             *self.extra],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while self.role() is None:
            assert self.proc.poll() is None, f"{self.name} exited: {self.log()}"
            assert time.monotonic() < deadline, f"{self.name} did not start: {self.log()}"
            time.sleep(0.02)
        return self

    def role(self):
        out = subprocess.run([HAWSER_BIN, "stat", "--json", "--status", f"{HOST}:{self.status_port}"],
                             capture_output=True, text=True, timeout=10)
        if out.returncode != 0:
            return None
        return json.loads(out.stdout)["role"]

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def log(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.workdir.glob("broker-*.log")))


def wait_for_master(brokers, timeout: float = 10.0) -> SharedBroker:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for b in brokers:
            if b.role() == "master":
                return b
        time.sleep(0.02)
    raise AssertionError("no master: " + "; ".join(f"{b.name}={b.role()}" for b in brokers))


def test_stomppy_follows_the_master_of_a_shared_store_through_repeated_kills(tmp_path):
    rng = random.Random(SEED)
    data = tmp_path / "store"
    brokers = [SharedBroker(tmp_path / n, data, n) for n in ("A", "B", "C")]
    ledger = Ledger()
    queue = "/queue/" + unique("stomppy-master-slave")
    clients = []
    producer = None
    try:
        brokers[0].start()
        assert wait_for_master(brokers[:1]) is brokers[0]
        for b in brokers[1:]:
            b.start()
            assert b.role() == "slave"
        ports = [b.port for b in brokers]
        consumer = Client("consumer", ports, ledger, queue=queue)
        producer_client = Client("producer", ports, ledger)
        clients += [consumer, producer_client]
        producer = Producer(producer_client, queue, ledger)
        consumer.start()
        producer_client.start()
        producer.thread.start()
        assert ledger.wait(lambda: len(ledger.confirmed) >= 20, PROGRESS_TIMEOUT), "producer made no progress"

        for i in range(KILLS):
            time.sleep(rng.uniform(*PAUSE))
            master = wait_for_master(brokers)
            confirmed_before = len(ledger.confirmed)
            producer_before, consumer_before = producer_client.connects, consumer.connects
            master.kill()
            new_master = wait_for_master([b for b in brokers if b is not master])
            assert ledger.wait(lambda: producer_client.connects > producer_before
                               and consumer.connects > consumer_before, CONNECTED_TIMEOUT), \
                f"kill {i}: not both reconnected; failures {producer_client.connect_failures}"
            assert producer_client.port == new_master.port, f"kill {i}: producer not on the new master"
            master.start()
            assert master.role() == "slave", f"kill {i}: the restarted broker is not a standby"
            assert ledger.wait(lambda: len(ledger.confirmed) > confirmed_before, PROGRESS_TIMEOUT), \
                f"kill {i}: no confirmation after the takeover; errors {ledger.errors}"

        producer.stop.set()
        producer.thread.join(5.0)
        ledger.wait(lambda: producer.unconfirmed_now() == 0, 3.0)
        ledger.wait(lambda: time.monotonic() - ledger.last_delivery > DRAIN_IDLE, DRAIN_MAX)
        producer_client.close()
        consumer.close()
        # What is left is in the one store: drain it from the master.
        master = wait_for_master(brokers)
        drain = Client("drain", [master.port], ledger, queue=queue, reconnect=False)
        clients.append(drain)
        drain.start()
        ledger.last_delivery = time.monotonic()
        ledger.wait(lambda: time.monotonic() - ledger.last_delivery > DRAIN_IDLE, DRAIN_MAX)
        drain.close()
    finally:
        if producer is not None:
            producer.stop.set()
        for c in clients:
            c.stopping = True
            try:
                c.conn.transport.disconnect_socket()
            except Exception:
                pass
        for b in brokers:
            b.stop()

    with ledger.lock:
        confirmed = set(ledger.confirmed)
        deliveries = {k: list(v) for k, v in ledger.deliveries.items()}
        ack_confirmed = dict(ledger.ack_confirmed)
    lost = sorted(confirmed - set(deliveries))
    bad_dups = {s: v for s, v in deliveries.items()
                if len(v) > 1 and s in ack_confirmed and any(ack_confirmed[s] < d for d in v[1:])}
    print(f"\nstomp-py master/slave: {KILLS} kills, confirmed {len(confirmed)}, received {len(deliveries)} "
          f"distinct, duplicates {sum(1 for v in deliveries.values() if len(v) > 1)} "
          f"(after a confirmed ack: {len(bad_dups)}), lost {len(lost)}; producer outage max "
          f"{max(producer_client.outages) * 1000 if producer_client.outages else 0:.0f} ms")
    assert not ledger.errors, f"ERROR frames: {ledger.errors[:5]}"
    assert not lost, f"{len(lost)} confirmed messages never received: {lost[:20]}"
    assert not bad_dups, f"redelivered after a confirmed ACK: {dict(list(bad_dups.items())[:10])}"
