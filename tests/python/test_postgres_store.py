"""PostgreSQL as the broker's store (issue 22): a real PostgreSQL 15 server,
real brokers, stomp-py clients.

A broker on the database is killed with SIGKILL under load and restarted:
every message it confirmed is delivered. A second broker that takes the
store over fences the first: the first confirms nothing more."""

from __future__ import annotations

import time

import pytest

import pg
from conftest import TEST_TIMEOUT_ARGS, unique, wait_until
from test_network import Producer

pytestmark = pytest.mark.skipif(not pg.available(), reason="PostgreSQL 15 server programs are not installed")


@pytest.fixture(scope="module")
def postgres():
    server = pg.PgServer().start()
    yield server
    server.remove()


def pg_args(url: str) -> tuple[str, ...]:
    return ("--store", "postgres", "--store-url", url) + TEST_TIMEOUT_ARGS


def test_kill_9_of_a_broker_on_postgres_loses_no_confirmed_message(broker_factory, stomp_factory, postgres):
    url = postgres.create_database(unique("kill").replace("-", "_"))
    broker = broker_factory(*pg_args(url), defaults=False)
    queue = f"/queue/{unique('pgkill')}"
    producer = Producer(broker.port, queue, 20000)
    producer.start()
    assert wait_until(lambda: len(producer.confirmed_now()) >= 1000, timeout=30.0), "nothing was confirmed"
    broker.kill()
    producer.join(10)
    confirmed = producer.confirmed_now()
    assert producer.sent < 20000, "the broker was not killed mid-stream"
    broker.start()
    consumer = stomp_factory(broker)
    consumer.subscribe(queue, ack="auto")
    assert wait_until(lambda: confirmed <= {m.body for m in consumer.messages}, timeout=60.0), (
        f"{len(confirmed - {m.body for m in consumer.messages})} of {len(confirmed)} confirmed messages lost")
    bodies = [m.body for m in consumer.messages]
    assert len(bodies) == len(set(bodies)), "a message was delivered twice"
    # What was stored and never confirmed (the kill came first) may be there too;
    # nothing else is.
    assert set(bodies) <= {f"m{i}" for i in range(producer.sent)}


def test_messages_and_durable_subscriptions_outlive_a_restart_on_postgres(broker_factory, stomp_factory, postgres):
    url = postgres.create_database(unique("restart").replace("-", "_"))
    broker = broker_factory(*pg_args(url), defaults=False)
    queue, topic = f"/queue/{unique('pgq')}", f"/topic/{unique('pgt')}"
    sub = stomp_factory(broker, client_id="durable-client")
    sub.subscribe(topic, id="d", headers={"activemq.subscriptionName": "keep"})
    sub.disconnect()
    producer = stomp_factory(broker)
    for i in range(50):
        producer.send(queue, f"q{i}", receipt=(i == 49), headers={"persistent": "true", "priority": str(i % 10)})
        producer.send(topic, f"t{i}", receipt=(i == 49), headers={"persistent": "true"})
    broker.restart(kill=True)
    consumer = stomp_factory(broker)
    consumer.subscribe(queue)
    got = consumer.expect_exactly(50, timeout=10.0)
    assert sorted(m.body for m in got) == sorted(f"q{i}" for i in range(50))
    # Highest priority first, as stored.
    assert int(got[0].headers["priority"]) == 9
    back = stomp_factory(broker, client_id="durable-client")
    back.subscribe(topic, id="d", headers={"activemq.subscriptionName": "keep"})
    assert [m.body for m in back.expect_exactly(50, timeout=10.0)] == [f"t{i}" for i in range(50)]


def test_a_broker_whose_store_was_taken_over_confirms_nothing_more(broker_factory, stomp_factory, postgres):
    url = postgres.create_database(unique("fence").replace("-", "_"))
    first = broker_factory(*pg_args(url), defaults=False)
    queue = f"/queue/{unique('pgfence')}"
    old = stomp_factory(first)
    old.send(queue, "before", receipt=True, headers={"persistent": "true"})
    # A second broker on the same database takes the store over (a new epoch).
    second = broker_factory(*pg_args(url), defaults=False)
    epoch = postgres.sql(url.split("dbname=")[1].split()[0], "SELECT epoch FROM hawser_lease")
    assert epoch == "2", epoch
    # The first one's next write is refused by the fence: no receipt, an
    # error, and the broker stops (a store that failed confirms nothing).
    with pytest.raises(AssertionError):
        old.send(queue, "after", receipt=True, headers={"persistent": "true"})
    assert wait_until(lambda: not first.running, timeout=10.0), "the fenced broker went on"
    assert first.proc.returncode == 74, first.log_text()
    consumer = stomp_factory(second)
    consumer.subscribe(queue)
    assert [m.body for m in consumer.expect_exactly(1, timeout=5.0)] == ["before"]


# ---------------------------------------------------------------------------
# Master/slave through the database's lease
# ---------------------------------------------------------------------------


def pair_on(postgres, tmp_path, tag: str):
    from test_stomppy_master_slave import SharedBroker

    url = postgres.create_database(unique(tag).replace("-", "_"))
    return url, [SharedBroker(tmp_path / n, tmp_path / f"data-{n}", n, ("--store", "postgres", "--store-url", url))
                 for n in ("M", "S")]


def test_the_slave_takes_the_database_lease_when_the_master_is_killed(postgres, tmp_path, stomp_factory):
    from test_stomppy_master_slave import wait_for_master

    url, pair = pair_on(postgres, tmp_path, "pgpair")
    try:
        pair[0].start()
        assert wait_for_master(pair[:1], timeout=15.0) is pair[0]
        pair[1].start()
        assert wait_until(lambda: pair[1].role() == "slave", timeout=10.0)
        queue = f"/queue/{unique('pgpair')}"
        producer = Producer(pair[0].port, queue, 20000)
        producer.start()
        assert wait_until(lambda: len(producer.confirmed_now()) >= 1000, timeout=30.0)
        pair[0].kill()
        producer.join(10)
        confirmed = producer.confirmed_now()
        started = time.monotonic()
        assert wait_for_master(pair[1:], timeout=15.0) is pair[1]
        outage = time.monotonic() - started
        # The lease (3 s by default) runs out by the database's clock first.
        assert outage < 10.0, outage

        class Master:
            port = pair[1].port

        consumer = stomp_factory(Master)
        consumer.subscribe(queue)
        assert wait_until(lambda: confirmed <= {m.body for m in consumer.messages}, timeout=60.0), (
            f"{len(confirmed - {m.body for m in consumer.messages})} of {len(confirmed)} confirmed messages lost")
    finally:
        for b in pair:
            b.stop()


def test_a_master_paused_past_its_lease_confirms_nothing_when_it_resumes(postgres, tmp_path, stomp_factory):
    """SIGSTOP the master for longer than the lease: the slave takes the
    lease by the database's clock and serves. SIGCONT: the old master's
    next write finds another epoch in hawser_lease, so what it is sent is
    not confirmed, and it goes back to being a standby."""
    import signal

    from test_stomppy_master_slave import wait_for_master

    url, pair = pair_on(postgres, tmp_path, "pgpause")
    try:
        pair[0].start()
        assert wait_for_master(pair[:1], timeout=15.0) is pair[0]
        pair[1].start()
        queue = f"/queue/{unique('pgpause')}"

        class Old:
            port = pair[0].port

        class New:
            port = pair[1].port

        old = stomp_factory(Old)
        old.send(queue, "before", receipt=True, headers={"persistent": "true"})
        pair[0].proc.send_signal(signal.SIGSTOP)
        try:
            assert wait_for_master(pair[1:], timeout=20.0) is pair[1]
        finally:
            pair[0].proc.send_signal(signal.SIGCONT)
        # No receipt: an error, or the connection closed under it.
        with pytest.raises(Exception):
            old.send(queue, "after", receipt=True, headers={"persistent": "true"})
        assert wait_until(lambda: pair[0].role() == "slave", timeout=15.0), pair[0].role()
        consumer = stomp_factory(New)
        consumer.subscribe(queue)
        assert [m.body for m in consumer.expect_exactly(1, timeout=5.0)] == ["before"]
        assert postgres.sql(url.split("dbname=")[1].split()[0], "SELECT holder FROM hawser_lease") != ""
    finally:
        for b in pair:
            b.stop()


# ---------------------------------------------------------------------------
# ActiveMQ's Java client on the PostgreSQL store
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    from jms_support import compile_java

    return compile_java(tmp_path_factory, "JmsFeatures")


def test_jms_messages_transactions_and_durable_subscribers_on_postgres_across_kill_9(
        broker_factory, postgres, features):
    """ActiveMQ's own client (activemq-client 5.17, OpenWire) against a
    broker on PostgreSQL: every message type, transactions, priorities and
    the DLQ; typed messages and a durable subscriber's messages survive
    kill -9 of the broker."""
    from test_openwire_features import run_check

    url = postgres.create_database(unique("jms").replace("-", "_"))
    broker = broker_factory(*pg_args(url), defaults=False)
    for check, expect in (("transactions", "ok"), ("priority", "ok"), ("dlq", "ok")):
        assert expect in run_check(features, broker, check)
    run_check(features, broker, "types-send")
    run_check(features, broker, "durable-offline")
    broker.restart(kill=True)
    out = run_check(features, broker, "types-receive")
    assert "ok received all 13 messages, exactly as sent" in out
    assert "ok only the persistent message survived the restart" in out
    out = run_check(features, broker, "durable-receive")
    assert "ok all five were kept across the restart" in out
