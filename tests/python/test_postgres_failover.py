"""Hawser on PostgreSQL through the database's own failover (issue 22): a
primary and a streaming standby made with pg_basebackup, real brokers,
stomp-py producers and consumers, the primary killed with SIGKILL and the
standby promoted with ``pg_ctl promote``.

The broker's connection string lists both servers
(``host=a,b port=p,q target_session_attrs=read-write``). When the primary
dies, nothing is confirmed until the broker reaches the promoted standby
and has checked there whether its last transaction committed; then it
goes on. With synchronous replication no confirmed message is lost. With
asynchronous replication a standby that fell behind loses what it never
received: the broker finds the database short of transactions it
committed, says how many, and stops (exit 74) rather than go on from a
state the database does not have; the test measures what was lost."""

from __future__ import annotations

import re
import threading
import time

import pytest
import stomp

import pg
from conftest import HOST, TEST_TIMEOUT_ARGS, unique, wait_until
from test_network import Producer

pytestmark = pytest.mark.skipif(not pg.available(), reason="PostgreSQL 15 server programs are not installed")

STANDBY = "standby1"


@pytest.fixture
def cluster():
    """A primary and its streaming standby, ``synchronous`` or not:
    ``make(synchronous) -> (primary, standby)``; both stopped and removed
    at teardown."""
    servers: list[pg.PgServer] = []

    def make(synchronous: bool):
        settings = {"wal_level": "replica", "max_wal_senders": "5", "hot_standby": "on"}
        if synchronous:
            settings |= {"synchronous_standby_names": STANDBY, "synchronous_commit": "on"}
        primary = pg.PgServer(settings)
        servers.append(primary)
        primary.start()
        standby = pg.PgServer.standby_of(primary, STANDBY)
        servers.append(standby)
        state = "sync" if synchronous else "async"
        assert wait_until(lambda: primary.sql("postgres", "SELECT sync_state FROM pg_stat_replication") == state,
                          timeout=30.0), primary.sql("postgres", "SELECT * FROM pg_stat_replication")
        return primary, standby

    yield make
    for s in servers:
        s.remove()


def store_url(primary: pg.PgServer, standby: pg.PgServer, tag: str) -> str:
    """A database made on the primary (and so on the standby), reached
    through both servers, the read-write one wanted."""
    name = unique(tag).replace("-", "_")
    primary.create_database(name)
    return (f"host={HOST},{HOST} port={primary.port},{standby.port} user=hawser dbname={name} "
            f"connect_timeout=2 target_session_attrs=read-write")


class Consumer:
    """Takes every message of ``queue`` with client-individual acks, acking
    each as it arrives; keeps the bodies in order (a body twice: a
    redelivery)."""

    def __init__(self, port: int, queue: str):
        self.bodies: list[str] = []
        self.lock = threading.Lock()
        outer = self

        class Listener(stomp.ConnectionListener):
            def on_message(self, frame):
                with outer.lock:
                    outer.bodies.append(frame.body)
                try:
                    outer.conn.ack(frame.headers["ack"])
                except Exception:
                    pass  # its broker went

        self.conn = stomp.Connection12([(HOST, port)], heartbeats=(0, 0), reconnect_attempts_max=1)
        self.conn.set_listener("c", Listener())
        self.conn.connect(wait=True)
        self.conn.subscribe(queue, id="1", ack="client-individual", headers={"activemq.prefetchSize": "100"})

    def seen(self) -> set[str]:
        with self.lock:
            return set(self.bodies)

    def duplicates(self) -> int:
        with self.lock:
            return len(self.bodies) - len(set(self.bodies))

    def close(self) -> None:
        try:
            self.conn.disconnect()
        except Exception:
            pass


def test_kill_9_of_the_primary_with_synchronous_replication_loses_nothing_and_the_broker_goes_on(
        cluster, broker_factory):
    primary, standby = cluster(synchronous=True)
    url = store_url(primary, standby, "pgsync")
    broker = broker_factory("--store", "postgres", "--store-url", url, *TEST_TIMEOUT_ARGS, defaults=False)
    queue = f"/queue/{unique('pgsync')}"
    total = 6000
    producer = Producer(broker.port, queue, total)
    consumer = Consumer(broker.port, queue)
    producer.start()
    try:
        assert wait_until(lambda: len(producer.confirmed_now()) >= 1000, timeout=30.0), "nothing was confirmed"
        before = len(producer.confirmed_now())
        primary.kill()
        killed = time.monotonic()
        # A quick promotion: well within what a lease would allow.
        time.sleep(0.3)
        standby.promote()
        assert wait_until(lambda: len(producer.confirmed_now()) > before + 10, timeout=60.0), (
            "nothing confirmed after the promotion: " + broker.log_text()[-2000:])
        outage = time.monotonic() - killed
        producer.join(120)
        assert producer.sent == total, "the producer's connection did not survive the failover"
        # Every message is confirmed in the end: the broker went on.
        assert wait_until(lambda: len(producer.confirmed_now()) == total, timeout=60.0), (
            f"{total - len(producer.confirmed_now())} never confirmed")
        assert broker.running, broker.log_text()[-2000:]
        confirmed = producer.confirmed_now()
        assert wait_until(lambda: confirmed <= consumer.seen(), timeout=60.0), (
            f"{len(confirmed - consumer.seen())} of {len(confirmed)} confirmed messages lost")
        assert consumer.duplicates() == 0
        log = broker.log_text()
        assert "back on a read-write server" in log, log[-2000:]
        print(f"\nsynchronous replication, promotion 0.3 s after the kill: outage {outage:.2f} s "
              f"(kill to the next confirmation), {len(confirmed)} confirmed, 0 lost")
    finally:
        consumer.close()


@pytest.mark.parametrize("promote_after", [0.3, 5.0], ids=["quick", "slower-than-the-lease"])
def test_a_master_slave_pair_follows_the_promotion_with_one_master_at_a_time(
        cluster, tmp_path, stomp_factory, promote_after):
    """Quick: the promotion comes well within the lease (3 s); the master
    confirms nothing from the kill until it has checked its last
    transaction on the promoted standby, then goes on, master still, and
    every message its producer sent is confirmed. Slower than the lease:
    the master loses mastership by its own clock; once the standby is
    promoted, one broker takes the lease with the next epoch and serves
    every confirmed message. Roles are sampled throughout: never two
    masters."""
    from test_stomppy_master_slave import SharedBroker, wait_for_master

    primary, standby = cluster(synchronous=True)
    url = store_url(primary, standby, "pgslow")
    pair = [SharedBroker(tmp_path / n, tmp_path / f"data-{n}", n, ("--store", "postgres", "--store-url", url))
            for n in ("M", "S")]
    roles: list[tuple[float, str | None, str | None]] = []
    watching = threading.Event()
    watching.set()

    def watch():
        while watching.is_set():
            roles.append((time.monotonic(), pair[0].role(), pair[1].role()))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    try:
        pair[0].start()
        assert wait_for_master(pair[:1], timeout=15.0) is pair[0]
        pair[1].start()
        assert wait_until(lambda: pair[1].role() == "slave", timeout=10.0)
        watcher.start()
        queue = f"/queue/{unique('pgslow')}"
        total = 6000
        producer = Producer(pair[0].port, queue, total)
        producer.start()
        assert wait_until(lambda: len(producer.confirmed_now()) >= 1000, timeout=30.0)
        before = len(producer.confirmed_now())
        primary.kill()
        killed = time.monotonic()
        time.sleep(promote_after)
        standby.promote()
        if promote_after < 3.0:
            # The same master, confirming again.
            assert wait_until(lambda: len(producer.confirmed_now()) > before + 10, timeout=60.0), pair[0].log()[-2000:]
            master = pair[0]
            outage = time.monotonic() - killed
            producer.join(120)
            assert wait_until(lambda: len(producer.confirmed_now()) == total, timeout=60.0), (
                f"{total - len(producer.confirmed_now())} never confirmed")
            assert pair[0].role() == "master", pair[0].log()[-2000:]
        else:
            master = wait_for_master(pair, timeout=60.0)
            outage = time.monotonic() - killed
            producer.join(30)
        confirmed = producer.confirmed_now()
        time.sleep(1.0)  # a last few role samples after the takeover
        watching.clear()
        watcher.join(10)
        both = [t for t, a, b in roles if a == "master" and b == "master"]
        assert not both, f"two masters at once, {len(both)} samples"
        assert len(roles) > 50, "the roles were hardly sampled"

        class Master:
            port = master.port

        consumer = stomp_factory(Master)
        consumer.subscribe(queue)
        assert wait_until(lambda: confirmed <= {m.body for m in consumer.messages}, timeout=60.0), (
            f"{len(confirmed - {m.body for m in consumer.messages})} of {len(confirmed)} confirmed messages lost")
        epoch = int(standby.sql(url.split("dbname=")[1].split()[0], "SELECT epoch FROM hawser_lease"))
        if promote_after < 3.0:
            assert epoch == 1, "mastership changed hands in a quick promotion"
        else:
            assert epoch >= 2, "the lease was not taken again with a new epoch"
        print(f"\nsynchronous replication, master/slave, promotion {promote_after} s after the kill (lease 3 s): "
              f"{master.name} master in epoch {epoch}, serving {outage:.2f} s after the kill, "
              f"{len(confirmed)} confirmed, 0 lost")
    finally:
        watching.clear()
        for b in pair:
            b.stop()


def test_asynchronous_replication_loses_what_the_standby_never_received_and_the_broker_says_so(
        cluster, broker_factory):
    """The standby falls behind (stopped while the primary goes on
    confirming), the primary is killed, the standby started again and
    promoted: it lacks the last transactions. The broker finds its batch
    chain short, logs how many transactions the database lost and stops
    (exit 74); restarted, it serves what the database has. The test
    measures the confirmed messages lost."""
    primary, standby = cluster(synchronous=False)
    url = store_url(primary, standby, "pgasync")
    broker = broker_factory("--store", "postgres", "--store-url", url, *TEST_TIMEOUT_ARGS, defaults=False)
    queue = f"/queue/{unique('pgasync')}"
    producer = Producer(broker.port, queue, 20000)
    producer.start()
    assert wait_until(lambda: len(producer.confirmed_now()) >= 1000, timeout=30.0), "nothing was confirmed"
    at_stop = len(producer.confirmed_now())
    standby.stop()
    assert wait_until(lambda: len(producer.confirmed_now()) >= at_stop + 2000, timeout=30.0)
    primary.kill()
    standby.start()
    standby.promote()
    assert wait_until(lambda: not broker.running, timeout=60.0), "the broker went on from a database that lost data"
    producer.join(10)
    confirmed = producer.confirmed_now()
    assert broker.proc.returncode == 74, broker.log_text()[-2000:]
    lost_batches = re.search(r"lost (\d+) committed transaction", broker.log_text())
    assert lost_batches, broker.log_text()[-2000:]
    broker.start()
    consumer = Consumer(broker.port, queue)
    try:
        assert wait_until(lambda: len(consumer.seen()) > 0, timeout=30.0)
        # Delivered until the count stays put for a second (at most 30 s).
        last = -1
        for _ in range(30):
            now = len(consumer.seen())
            if now == last:
                break
            last = now
            time.sleep(1.0)
        seen = consumer.seen()
        # The database kept a prefix of what was committed (what the standby
        # had received when it stopped) and lost the rest.
        kept = len(seen)
        assert seen == {f"m{i}" for i in range(kept)}, "not a prefix of what was sent"
        lost = confirmed - seen
        assert lost == {m for m in confirmed if int(m[1:]) >= kept}
        assert lost, "nothing was lost: the standby was not behind"
        print(f"\nasynchronous replication, standby stopped at {at_stop} confirmations and the primary killed at "
              f"{len(confirmed)}: {len(lost)} confirmed messages lost in {lost_batches.group(1)} transactions; "
              f"detected, the broker stopped (exit 74), and the restart served the {kept} kept")
    finally:
        consumer.close()


def test_a_backlog_beyond_memory_is_read_back_from_the_standby_with_prefer_standby(
        cluster, broker_factory, stomp_factory):
    """``target_session_attrs=prefer-standby`` (libpq's name): the broker
    writes on the primary and pages its backlog back from the standby, once
    the standby has replayed what the read must see. Every message comes
    back, in order; the standby's own statistics show the rows it read from
    the store's tables."""
    primary, standby = cluster(synchronous=True)
    url = store_url(primary, standby, "pgreads").replace("target_session_attrs=read-write",
                                                         "target_session_attrs=prefer-standby")
    db = url.split("dbname=")[1].split()[0]
    broker = broker_factory("--store", "postgres", "--store-url", url, "--max-pending-memory-bytes", str(1 << 20),
                            *TEST_TIMEOUT_ARGS, defaults=False)
    queue = f"/queue/{unique('pgreads')}"
    count = 6000
    body = "x" * 1000
    producer = stomp_factory(broker)
    for i in range(count):
        producer.send(queue, f"{i}:{body}", receipt=(i % 500 == 499), headers={"persistent": "true"})

    def fetched(server: pg.PgServer) -> int:
        """Rows of the store's tables that queries on ``server`` fetched."""
        return int(server.sql(db, "SELECT coalesce(sum(idx_tup_fetch), 0) FROM pg_stat_user_tables "
                                  "WHERE relname IN ('hawser_entries', 'hawser_messages')"))

    before = fetched(standby)
    consumer = stomp_factory(broker)
    consumer.subscribe(queue, ack="auto", headers={"activemq.prefetchSize": "500"})
    got = consumer.expect_exactly(count, timeout=60.0)
    assert [int(m.body.split(":")[0]) for m in got] == list(range(count)), "out of order or missing"
    # Most of the backlog was beyond the 1 MiB of memory: read back, there.
    assert wait_until(lambda: fetched(standby) - before >= count, timeout=15.0), (
        f"the standby fetched {fetched(standby) - before} rows of the store")
    assert broker.running
