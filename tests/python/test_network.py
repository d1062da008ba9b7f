"""Network of brokers (issue 21): a producer on one broker, consumers on
another, joined by ActiveMQ's `static:(...)` network connector. Clients are
stomp-py; the brokers are real processes.

Every run counts: each confirmed message delivered, none twice, none left
on the producer's broker at the end (a queue browser's `browser:end` says
how many are left, rather than waiting for something not to come)."""

from __future__ import annotations

import threading
import time

import pytest
import stomp

from conftest import DEFAULT_ARGS, HOST, free_port, unique, wait_until


def connector(peer) -> tuple[str, ...]:
    return ("--network-connector", f"static:(tcp://{HOST}:{peer.port})")


def browse_count(stomp_factory, broker, queue: str) -> int:
    """Messages waiting in ``queue`` on ``broker``, as a queue browser sees them."""
    c = stomp_factory(broker)
    c.subscribe(queue, id="browse", headers={"browser": "true"})
    assert c.listener.wait(lambda: any(m.headers.get("browser") == "end" for m in c.listener.messages), 5.0)
    return sum(1 for m in c.messages if m.headers.get("browser") != "end")


def test_messages_go_to_the_broker_with_the_consumer_and_nothing_is_left(broker_factory, stomp_factory):
    b = broker_factory()
    a = broker_factory(*connector(b))
    queue = f"/queue/{unique('net')}"
    consumer = stomp_factory(b)
    consumer.subscribe(queue, ack="client-individual")
    # The link learns of the consumer from B's advisories: a message sent
    # before that waits on A until it does, so none is lost either way.
    producer = stomp_factory(a)
    n = 300
    for i in range(n):
        producer.send(queue, f"m{i}", receipt=(i % 50 == 49), headers={"persistent": "true"})
    got = consumer.wait_messages(n, timeout=20.0)
    for m in got:
        consumer.ack(m, receipt=False)
    bodies = [m.body for m in got]
    assert sorted(bodies, key=lambda s: int(s[1:])) == [f"m{i}" for i in range(n)], bodies[:10]
    assert len(set(bodies)) == n, "a message was delivered twice"
    assert browse_count(stomp_factory, a, queue) == 0, "messages left on the producer's broker"
    # The link carried the message whole: headers as sent, marked with its path.
    assert got[0].headers.get("persistent") == "true"
    assert got[0].headers.get("HawserNetworkHops") == "1"


def test_local_consumers_come_before_the_network(broker_factory, stomp_factory):
    b = broker_factory()
    a = broker_factory(*connector(b))
    queue = f"/queue/{unique('local')}"
    remote = stomp_factory(b)
    remote.subscribe(queue, ack="client-individual")
    local = stomp_factory(a)
    local.subscribe(queue, ack="client-individual", headers={"activemq.prefetchSize": "1000"})
    # Give the link the remote consumer's advisory, then send.
    assert wait_until(lambda: bridged(stomp_factory, a, queue), timeout=10.0)
    producer = stomp_factory(a)
    for i in range(50):
        producer.send(queue, f"m{i}", receipt=(i == 49))
    got = local.wait_messages(50, timeout=10.0)
    assert [m.body for m in got] == [f"m{i}" for i in range(50)]
    assert remote.messages == [], "a message went to the network while a local consumer had room"


def bridged(stomp_factory, broker, destination: str, topic: bool = False) -> bool:
    """Whether ``broker`` has a network link's consumer on ``destination``:
    its own consumer advisories say so (with the link's path)."""
    name = destination.removeprefix("/topic/" if topic else "/queue/")
    c = stomp_factory(broker)
    kind = "Topic" if topic else "Queue"
    c.subscribe(f"/topic/ActiveMQ.Advisory.Consumer.{kind}.{name}", id="adv")
    # Those there are come at once, before the subscription's receipt.
    c.listener.wait(lambda: len(c.listener.messages) >= 2, 0.5)
    return any("hawser.advisory.networkPath" in m.headers for m in c.messages)


def mirrored(stomp_factory, broker, suffix: str) -> bool:
    """Whether ``broker`` has a temporary queue whose name ends with
    ``suffix``: a link's mirror of a peer's, which its TempQueue advisories
    (replayed to a new subscriber) show."""
    c = stomp_factory(broker)
    c.subscribe("/topic/ActiveMQ.Advisory.TempQueue", id="adv")
    c.listener.wait(lambda: len(c.listener.messages) >= 1, 0.5)
    return any(m.headers.get("hawser.advisory.destination", "").endswith(suffix)
               and m.headers.get("hawser.advisory.added") == "true" for m in c.messages)


# ---------------------------------------------------------------------------
# kill -9 under load: nothing confirmed lost, nothing delivered twice
# ---------------------------------------------------------------------------


class Settling(stomp.ConnectionListener):
    """A consumer that acknowledges each message with a receipt. A message is
    settled once that receipt came; one delivered again after it settled is
    a duplicate. One delivered again before (its broker died first) is an
    honest redelivery."""

    def __init__(self, port: "int | list[int]", queue: str, shared: "Settling | None" = None, ack: bool = True,
                 prefetch: int = 1000):
        self.acks = ack
        self.cond = threading.Condition()
        self.seen: list[str] = shared.seen if shared else []
        self.settled: set[str] = shared.settled if shared else set()
        self.duplicates: list[str] = shared.duplicates if shared else []
        self.pending: dict[str, str] = {}
        ports = port if isinstance(port, list) else [port]
        # Given a list, stomp-py tries each in turn: a standby refuses.
        self.conn = stomp.Connection12([(HOST, p) for p in ports], heartbeats=(0, 0), reconnect_attempts_max=1)
        self.conn.set_listener("s", self)
        self.conn.connect(wait=True)
        self.conn.subscribe(queue, id="s", ack="client-individual",
                            headers={"receipt": "sub", "activemq.prefetchSize": str(prefetch)})
        assert self.wait(lambda: "sub" in self.pending.values() or self.subscribed, 5.0)

    subscribed = False

    def wait(self, cond, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(cond, timeout=timeout)

    def on_message(self, frame):
        body = frame.body
        with self.cond:
            if body in self.settled:
                self.duplicates.append(body)
            self.seen.append(body)
            receipt = f"ack-{len(self.seen)}"
            self.cond.notify_all()
            if not self.acks:
                return
            self.pending[receipt] = body
        try:
            self.conn.ack(frame.headers["ack"], receipt=receipt)
        except Exception:
            pass  # the broker died; the message is not settled

    def on_receipt(self, frame):
        rid = frame.headers.get("receipt-id")
        with self.cond:
            if rid == "sub":
                self.subscribed = True
            elif rid in self.pending:
                self.settled.add(self.pending.pop(rid))
            self.cond.notify_all()

    def close(self):
        try:
            self.conn.disconnect()
        except Exception:
            pass


class Producer(threading.Thread):
    """Sends ``m0``, ``m1``... persistent, each with a receipt, until told
    to stop or its broker dies; ``confirmed`` holds what was receipted."""

    def __init__(self, port: int, queue: str, count: int):
        super().__init__(daemon=True)
        self.queue, self.count = queue, count
        self.confirmed: set[str] = set()
        self.lock = threading.Lock()
        self.sent = 0
        outer = self

        class Receipts(stomp.ConnectionListener):
            def on_receipt(self, frame):
                with outer.lock:
                    outer.confirmed.add(frame.headers["receipt-id"])

        self.conn = stomp.Connection12([(HOST, port)], heartbeats=(0, 0), reconnect_attempts_max=1)
        self.conn.set_listener("r", Receipts())
        self.conn.connect(wait=True)

    run_from = 0

    def run(self):
        try:
            for i in range(self.run_from, self.count):
                self.conn.send(self.queue, f"m{i}", headers={"persistent": "true", "receipt": f"m{i}"})
                self.sent = i + 1
                if i % 200 == 199:
                    time.sleep(0.01)
        except Exception:
            pass  # its broker was killed

    def confirmed_now(self) -> set[str]:
        with self.lock:
            return set(self.confirmed)


def drained(consumer: Settling, expected: set[str], stomp_factory, brokers, queue) -> bool:
    with consumer.cond:
        if not expected <= set(consumer.seen):
            return False
    return all(browse_count(stomp_factory, b, queue) == 0 for b in brokers)


def flowing(broker_factory, stomp_factory, tag: str, count: int):
    """A producer on A sending ``count`` messages to a consumer on B, once
    600 of them have crossed the link: (a, b, queue, consumer, producer)."""
    b = broker_factory()
    a = broker_factory(*connector(b))
    queue = f"/queue/{unique(tag)}"
    consumer = Settling(b.port, queue)
    assert wait_until(lambda: bridged(stomp_factory, a, queue), timeout=10.0)
    producer = Producer(a.port, queue, count)
    producer.start()
    assert consumer.wait(lambda: len(consumer.seen) >= 600, 20.0), "nothing crossed the link"
    return a, b, queue, consumer, producer


def test_kill_9_of_the_producers_broker_loses_nothing_confirmed_and_doubles_nothing(broker_factory, stomp_factory):
    a, b, queue, consumer, producer = flowing(broker_factory, stomp_factory, "killa", 4000)
    a.kill()
    producer.join(10)
    confirmed = producer.confirmed_now()
    assert len(confirmed) >= 600
    a.start()
    # Whatever A stored and had not forwarded goes on after its restart; a
    # forward repeated because its acknowledgement was lost is dropped by B.
    assert wait_until(lambda: drained(consumer, confirmed, stomp_factory, [a], queue), timeout=30.0), (
        f"{len(confirmed - set(consumer.seen))} confirmed messages never arrived")
    assert consumer.wait(lambda: not consumer.pending, 5.0)
    assert consumer.duplicates == []
    assert len(consumer.seen) == len(set(consumer.seen)), "a message was delivered twice"
    consumer.close()


def test_kill_9_of_the_consumers_broker_loses_nothing_confirmed_and_doubles_nothing(broker_factory, stomp_factory):
    a, b, queue, consumer, producer = flowing(broker_factory, stomp_factory, "killb", 3000)
    b.kill()
    consumer.close()
    time.sleep(0.3)  # A's producer keeps sending to A meanwhile
    b.start()
    consumer = Settling(b.port, queue, shared=consumer)
    producer.join(30)
    assert producer.sent == 3000, "the producer's broker was not killed: every send goes through"
    assert wait_until(lambda: len(producer.confirmed_now()) == 3000, timeout=10.0)
    confirmed = producer.confirmed_now()
    # The link reconnects by itself, learns the new consumer, and forwards
    # the rest; what B stored before the kill is delivered from B.
    assert wait_until(lambda: drained(consumer, confirmed, stomp_factory, [a, b], queue), timeout=40.0), (
        f"{len(confirmed - set(consumer.seen))} confirmed messages never arrived")
    assert consumer.duplicates == [], f"delivered again after being settled: {consumer.duplicates[:10]}"
    consumer.close()


# ---------------------------------------------------------------------------
# Topics, lines, meshes, TTLs
# ---------------------------------------------------------------------------


def network(broker_factory, links: dict[int, list[int]], *extra: str) -> list:
    """Brokers 0..n-1, broker i with a static connector to each of
    ``links[i]``; ports are chosen first so that each can name its peers."""
    brokers = [broker_factory(start=False) for _ in links]
    for b in brokers:
        b.port, b.openwire_port = free_port(), free_port()
    for i, b in enumerate(brokers):
        peers = ",".join(f"tcp://{HOST}:{brokers[j].port}" for j in links[i])
        args = ("--network-connector", f"static:({peers}){'?' + '&'.join(extra) if extra else ''}") if peers else ()
        b.start(DEFAULT_ARGS + args)
    return brokers


def test_a_topic_message_reaches_every_subscriber_on_either_broker_once(broker_factory, stomp_factory):
    b = broker_factory()
    a = broker_factory(*connector(b))
    name = unique("prices")
    here, there, pattern = stomp_factory(a), stomp_factory(b), stomp_factory(b)
    here.subscribe(f"/topic/{name}.eur")
    there.subscribe(f"/topic/{name}.eur")
    pattern.subscribe(f"/topic/{name}.>")
    assert wait_until(lambda: bridged(stomp_factory, a, f"/topic/{name}.eur", topic=True), timeout=10.0)
    producer = stomp_factory(a)
    for i in range(100):
        producer.send(f"/topic/{name}.eur", f"t{i}", receipt=(i == 99))
    expected = [f"t{i}" for i in range(100)]
    for c in (here, there, pattern):
        assert [m.body for m in c.expect_exactly(100, timeout=10.0)] == expected


def test_three_brokers_in_a_line_forward_within_network_ttl(broker_factory, stomp_factory):
    # A -> B -> C; the consumer is on C, two hops from the producer.
    a, b, c = network(broker_factory, {0: [1], 1: [2], 2: []}, "networkTTL=2")
    queue = f"/queue/{unique('line')}"
    consumer = Settling(c.port, queue)
    assert wait_until(lambda: bridged(stomp_factory, a, queue), timeout=10.0), "C's demand never reached A"
    producer = stomp_factory(a)
    for i in range(200):
        producer.send(queue, f"m{i}", receipt=(i % 50 == 49), headers={"persistent": "true"})
    assert consumer.wait(lambda: len(consumer.seen) >= 200, 20.0)
    assert sorted(consumer.seen, key=lambda s: int(s[1:])) == [f"m{i}" for i in range(200)]
    assert consumer.wait(lambda: not consumer.pending, 5.0)
    assert all(browse_count(stomp_factory, x, queue) == 0 for x in (a, b, c))
    assert consumer.seen[0] and consumer.duplicates == []
    consumer.close()


def test_with_network_ttl_1_a_line_does_not_carry_demand_two_hops(broker_factory, stomp_factory):
    a, b, c = network(broker_factory, {0: [1], 1: [2], 2: []})
    queue = f"/queue/{unique('ttl')}"
    consumer = Settling(c.port, queue)
    # B serves C's demand (one hop); A hears of B's bridge consumer, two hops
    # from C, and leaves it alone: A's messages stay on A.
    assert wait_until(lambda: bridged(stomp_factory, b, queue), timeout=10.0)
    producer = stomp_factory(a)
    for i in range(20):
        producer.send(queue, f"m{i}", receipt=(i == 19), headers={"persistent": "true"})
    assert browse_count(stomp_factory, a, queue) == 20
    assert not bridged(stomp_factory, a, queue)
    consumer.close()


def test_a_full_mesh_delivers_each_message_once(broker_factory, stomp_factory):
    a, b, c = network(broker_factory, {0: [1, 2], 1: [0, 2], 2: [0, 1]})
    topic, queue = f"/topic/{unique('mesh')}", f"/queue/{unique('mesh')}"
    subscribers = [stomp_factory(x) for x in (a, b, c)]
    for s in subscribers:
        s.subscribe(topic)
    consumer = Settling(c.port, queue)
    for x in (a, b):
        assert wait_until(lambda: bridged(stomp_factory, x, topic, topic=True), timeout=10.0)
    assert wait_until(lambda: bridged(stomp_factory, a, queue), timeout=10.0)
    producer = stomp_factory(a)
    for i in range(100):
        producer.send(topic, f"t{i}")
        producer.send(queue, f"m{i}", receipt=(i == 99), headers={"persistent": "true"})
    for s in subscribers:
        assert [m.body for m in s.expect_exactly(100, timeout=10.0)] == [f"t{i}" for i in range(100)]
    assert consumer.wait(lambda: len(consumer.seen) >= 100, 10.0)
    assert sorted(consumer.seen, key=lambda s: int(s[1:])) == [f"m{i}" for i in range(100)]
    consumer.close()


# ---------------------------------------------------------------------------
# Nothing stranded
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("duplex", [False, True], ids=["two-connectors", "duplex"])
def test_messages_follow_a_consumer_that_moves_to_another_broker(broker_factory, stomp_factory, duplex):
    """ActiveMQ strands these: forwarded to B, whose consumer then leaves for
    A, they may not go back to A (A is on their path). Here B, with no
    consumer of its own left, sends them on to where the consumer went (or,
    with one duplex connector on A, A's link takes them from B)."""
    if duplex:
        b = broker_factory()
        a = broker_factory(*duplex_connector(b))
    else:
        a, b = network(broker_factory, {0: [1], 1: [0]})
    queue = f"/queue/{unique('moving')}"
    # A slow consumer: it takes ten messages and acknowledges none.
    first = Settling(b.port, queue, ack=False, prefetch=10)
    assert wait_until(lambda: bridged(stomp_factory, a, queue), timeout=10.0)
    producer = stomp_factory(a)
    n = 300
    for i in range(n):
        producer.send(queue, f"m{i}", receipt=(i % 50 == 49), headers={"persistent": "true"})
    assert first.wait(lambda: len(first.seen) >= 10, 10.0)
    assert wait_until(lambda: browse_count(stomp_factory, a, queue) == 0, timeout=10.0)
    stranded = browse_count(stomp_factory, b, queue)
    assert stranded >= n - 10, "the messages were not waiting on B: the move proves nothing"
    # The consumer moves: its ten go back to B's queue, and it appears on A.
    first.conn.disconnect()
    second = Settling(a.port, queue, shared=first)
    expected = {f"m{i}" for i in range(n)}
    assert wait_until(lambda: drained(second, expected, stomp_factory, [a, b], queue), timeout=30.0), (
        f"{len(expected - set(second.seen))} messages stranded")
    assert second.wait(lambda: not second.pending, 5.0)
    assert second.duplicates == [], f"delivered again after being settled: {second.duplicates[:10]}"
    second.close()


# ---------------------------------------------------------------------------
# The Java client (ActiveMQ's activemq-client over OpenWire)
# ---------------------------------------------------------------------------


def test_jms_messages_cross_the_network_typed_and_by_selector(broker_factory, tmp_path_factory):
    from jms_support import compile_java
    from test_openwire_features import run_check
    features = compile_java(tmp_path_factory, "JmsFeatures")
    b = broker_factory()
    a = broker_factory(*connector(b))
    out = run_check(features, a, "network-send")
    assert "ok sent 200" in out
    out = run_check(features, b, "network-receive")
    assert "ok the rest came to the consumer without a selector, in order, once" in out
    assert "FAIL" not in out


# ---------------------------------------------------------------------------
# Visibility
# ---------------------------------------------------------------------------


def test_status_and_hawser_stat_report_each_link(broker_factory, stomp_factory):
    import json
    import subprocess
    import urllib.request

    from conftest import HAWSER_BIN

    b = broker_factory()
    status_port = free_port()
    a = broker_factory(*connector(b), "--status", f"{HOST}:{status_port}")
    queue = f"/queue/{unique('seen')}"
    consumer = stomp_factory(b)
    consumer.subscribe(queue)
    assert wait_until(lambda: bridged(stomp_factory, a, queue), timeout=10.0)
    producer = stomp_factory(a)
    for i in range(10):
        producer.send(queue, f"m{i}", receipt=(i == 9))
    consumer.expect_exactly(10)

    def links() -> list:
        with urllib.request.urlopen(f"http://{HOST}:{status_port}/status", timeout=2) as r:
            return json.load(r)["network"]

    assert wait_until(lambda: links()[0]["forwarded"] == 10, timeout=5.0), links()
    (link,) = links()
    assert link["up"] and link["demands"] == 1 and link["connections"] == 1
    assert f"{HOST}:{b.port}" in link["peer"]
    out = subprocess.run([HAWSER_BIN, "stat", "--status", f"{HOST}:{status_port}"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "up, 1 demand(s), 10 forwarded, 0 pulled, 1 connection(s)" in out.stdout, out.stdout
    # The peer goes away: the link says so, and reconnects when it is back.
    b.kill()
    assert wait_until(lambda: not links()[0]["up"], timeout=5.0)
    b.start()
    assert wait_until(lambda: links()[0]["up"] and links()[0]["connections"] == 2, timeout=15.0), links()



# ---------------------------------------------------------------------------
# masterslave:(...): a link that follows a master/slave pair
# ---------------------------------------------------------------------------


def test_a_masterslave_link_follows_the_pair_when_its_master_is_killed(broker_factory, stomp_factory, tmp_path):
    from test_stomppy_master_slave import SharedBroker, wait_for_master

    data = tmp_path / "pair-store"
    pair = [SharedBroker(tmp_path / n, data, n) for n in ("M", "S")]
    try:
        pair[0].start()
        assert wait_for_master(pair[:1]) is pair[0]
        pair[1].start()
        a = broker_factory("--network-connector",
                           f"masterslave:(tcp://{HOST}:{pair[0].port},tcp://{HOST}:{pair[1].port})")
        queue = f"/queue/{unique('pair')}"
        ports = [x.port for x in pair]
        consumer = Settling(ports, queue)
        assert wait_until(lambda: bridged(stomp_factory, a, queue), timeout=10.0)
        producer = Producer(a.port, queue, 3000)
        producer.start()
        assert consumer.wait(lambda: len(consumer.seen) >= 500, 20.0), "nothing crossed the link"
        pair[0].kill()
        consumer.close()
        assert wait_for_master(pair[1:], timeout=15.0) is pair[1]
        pair[0].start()  # back as the standby
        consumer = Settling(ports, queue, shared=consumer)
        producer.join(30)
        assert producer.sent == 3000
        assert wait_until(lambda: len(producer.confirmed_now()) == 3000, timeout=10.0)
        # Sent after the takeover: only a link that followed the pair to its
        # new master carries these.
        after = Producer(a.port, queue, 3500)
        after.run_from = 3000
        after.start()
        after.join(30)
        assert after.sent == 3500
        assert wait_until(lambda: len(after.confirmed_now()) == 500, timeout=10.0)
        confirmed = producer.confirmed_now() | after.confirmed_now()

        class Master:
            port = pair[1].port

        assert wait_until(lambda: drained(consumer, confirmed, stomp_factory, [a, Master], queue), timeout=40.0), (
            f"{len(confirmed - set(consumer.seen))} confirmed messages never arrived")
        assert consumer.duplicates == [], f"delivered again after being settled: {consumer.duplicates[:10]}"
        consumer.close()
    finally:
        for x in pair:
            x.stop()


def test_the_slave_of_a_forwarding_pair_does_not_forward_the_masters_messages_twice(broker_factory, stomp_factory,
                                                                                     tmp_path):
    """The pair forwards to C. Its master is killed while forwards are on
    their way: some are stored on C, their receipts lost. The slave takes
    the store over and forwards them again, under the store's names (not
    its node's), so C drops the repeats."""
    from test_stomppy_master_slave import SharedBroker, wait_for_master

    c = broker_factory()
    queue = f"/queue/{unique('pairsrc')}"
    consumer = Settling(c.port, queue)
    data = tmp_path / "pair-store"
    pair = [SharedBroker(tmp_path / n, data, n, connector(c)) for n in ("M", "S")]
    try:
        pair[0].start()
        assert wait_for_master(pair[:1]) is pair[0]
        pair[1].start()

        class Master:
            port = pair[0].port

        assert wait_until(lambda: bridged(stomp_factory, Master, queue), timeout=10.0)
        producer = Producer(pair[0].port, queue, 4000)
        producer.start()
        assert consumer.wait(lambda: len(consumer.seen) >= 600, 20.0), "nothing crossed the link"
        pair[0].kill()
        producer.join(10)
        confirmed = producer.confirmed_now()
        assert wait_for_master(pair[1:], timeout=15.0) is pair[1]
        Master.port = pair[1].port
        assert wait_until(lambda: drained(consumer, confirmed, stomp_factory, [Master], queue), timeout=40.0), (
            f"{len(confirmed - set(consumer.seen))} confirmed messages never arrived")
        assert consumer.wait(lambda: not consumer.pending, 5.0)
        assert consumer.duplicates == [], f"forwarded twice: {consumer.duplicates[:10]}"
        assert len(consumer.seen) == len(set(consumer.seen)), "a message was delivered twice"
        consumer.close()
    finally:
        for x in pair:
            x.stop()


def test_jms_clients_across_a_link_through_kill_9_of_either_broker(broker_factory, stomp_factory, tmp_path_factory):
    """ActiveMQ's Java client on both ends (tests/java/JmsFailoverDrill.java):
    a producer on A and a consumer on B, each with a failover URI to its own
    broker; A is killed with SIGKILL and restarted, then B. Every send the
    producer was told of arrives; the consumer's application is given none
    twice."""
    from jms_support import compile_java
    from test_openwire_master_slave import Program

    drill = compile_java(tmp_path_factory, "JmsFailoverDrill")
    b = broker_factory()
    a = broker_factory(*connector(b))
    queue = unique("jmsnet")
    programs = []
    try:
        consumer = Program(drill, "consumer", "consume", f"failover:(tcp://{HOST}:{b.openwire_port})", queue,
                           "60", "3000")
        programs.append(consumer)
        assert wait_until(lambda: bridged(stomp_factory, a, f"/queue/{queue}"), timeout=15.0)
        producer = Program(drill, "producer", "produce", f"failover:(tcp://{HOST}:{a.openwire_port})", queue,
                           "1000000", "40")
        programs.append(producer)
        for victim in (a, b):
            sent, got = producer.count(), consumer.count()
            assert producer.wait(lambda p: len(p.numbers) >= sent + 200, 20.0), producer.tail()
            assert consumer.wait(lambda c: len(c.numbers) >= got + 100, 20.0), consumer.tail()
            victim.restart(kill=True)
        sent = producer.count()
        assert producer.wait(lambda p: len(p.numbers) >= sent + 200, 20.0), f"no sends after the kills:\n{producer.tail()}"
        assert producer.finish() == 0, producer.tail()
        confirmed = set(producer.numbers)
        assert consumer.wait(lambda c: confirmed <= set(c.numbers), 40.0), (
            f"{len(confirmed - set(consumer.numbers))} confirmed messages never arrived:\n{consumer.tail()}")
        assert consumer.finish() == 0, consumer.tail()
        assert len(consumer.numbers) == len(set(consumer.numbers)), "the application was given a message twice"
        assert browse_count(stomp_factory, a, f"/queue/{queue}") == 0
        assert browse_count(stomp_factory, b, f"/queue/{queue}") == 0
    finally:
        for p in programs:
            p.kill()


def test_a_line_of_three_survives_kill_9_of_the_middle_broker(broker_factory, stomp_factory):
    a, b, c = network(broker_factory, {0: [1], 1: [2], 2: []}, "networkTTL=2")
    queue = f"/queue/{unique('middle')}"
    consumer = Settling(c.port, queue)
    assert wait_until(lambda: bridged(stomp_factory, a, queue), timeout=10.0)
    producer = Producer(a.port, queue, 3000)
    producer.start()
    assert consumer.wait(lambda: len(consumer.seen) >= 500, 20.0), "nothing crossed the line"
    b.restart(kill=True)
    producer.join(30)
    assert producer.sent == 3000, "the producer's broker was not killed: every send goes through"
    assert wait_until(lambda: len(producer.confirmed_now()) == 3000, timeout=10.0)
    confirmed = producer.confirmed_now()
    # A's link and B's reconnect by themselves; what B stored before the
    # kill goes on to C, what A still holds goes through B again.
    assert wait_until(lambda: drained(consumer, confirmed, stomp_factory, [a, b, c], queue), timeout=40.0), (
        f"{len(confirmed - set(consumer.seen))} confirmed messages never arrived")
    assert consumer.wait(lambda: not consumer.pending, 5.0)
    assert consumer.duplicates == []
    assert len(consumer.seen) == len(set(consumer.seen)), "a message was delivered twice"
    consumer.close()


def test_included_and_excluded_destinations_limit_what_a_link_forwards(broker_factory, stomp_factory):
    b = broker_factory()
    a = broker_factory("--network-connector", f"static:(tcp://{HOST}:{b.port})?includedDestinations="
                       f"queue://orders.>,topic://prices.*&excludedDestinations=queue://orders.secret")
    tag = unique("f")
    wanted, secret, other = f"/queue/orders.{tag}", "/queue/orders.secret", f"/queue/{tag}.other"
    prices, deep = f"/topic/prices.{tag}", f"/topic/prices.{tag}.deep"
    consumers = {d: stomp_factory(b) for d in (wanted, secret, other, prices, deep)}
    for d, c in consumers.items():
        c.subscribe(d)
    assert wait_until(lambda: bridged(stomp_factory, a, wanted), timeout=10.0)
    assert wait_until(lambda: bridged(stomp_factory, a, prices, topic=True), timeout=10.0)
    producer = stomp_factory(a)
    for d in consumers:
        producer.send(d, f"to {d}", receipt=True, headers={"persistent": "true"})
    assert [m.body for m in consumers[wanted].expect_exactly(1)] == [f"to {wanted}"]
    assert [m.body for m in consumers[prices].expect_exactly(1)] == [f"to {prices}"]
    # The queues left out stay on A, where a browser counts them.
    for d in (secret, other):
        assert browse_count(stomp_factory, a, d) == 1, d
        assert consumers[d].messages == []
    assert consumers[deep].messages == []


def test_request_reply_across_a_link_reaches_the_requesters_temporary_queue(broker_factory, stomp_factory):
    """The requester on B, its reply queue a temporary one there; the
    service on A. The request crosses on demand; the reply, sent on A to the
    temporary queue, crosses back because A's link mirrors B's temporary
    queues (from ActiveMQ.Advisory.TempQueue).

    The mirror comes by another way than the request (A's link reads B's
    advisories; B's link forwards the request), so the test waits for it: a
    reply sent before it came is refused as to a deleted destination, as
    ActiveMQ refuses one to a temporary queue its bridge has not heard of."""
    a, b = network(broker_factory, {0: [1], 1: [0]})
    service = f"/queue/{unique('service')}"
    responder = stomp_factory(a)
    responder.subscribe(service)
    requester = stomp_factory(b)
    requester.subscribe("/temp-queue/replies", id="replies")
    assert wait_until(lambda: bridged(stomp_factory, b, service), timeout=10.0)
    assert wait_until(lambda: mirrored(stomp_factory, a, "-replies"), timeout=10.0)
    for i in range(20):
        requester.send(service, f"q{i}", receipt=(i == 19), headers={"reply-to": "/temp-queue/replies"})
    requests = responder.wait_messages(20, timeout=10.0)
    reply_to = requests[0].headers["reply-to"]
    assert reply_to.startswith("/remote-temp-queue/"), reply_to
    for m in requests:
        responder.send(m.headers["reply-to"], "re:" + m.body, receipt=True)
    replies = requester.wait_messages(20, timeout=10.0)
    assert sorted(r.body for r in replies) == sorted(f"re:q{i}" for i in range(20))


# ---------------------------------------------------------------------------
# Duplex: one connector, messages both ways
# ---------------------------------------------------------------------------


def duplex_connector(peer) -> tuple[str, ...]:
    return ("--network-connector", f"static:(tcp://{HOST}:{peer.port})?duplex=true")


def by_number(bodies) -> list[str]:
    return sorted(bodies, key=lambda s: int(s[1:]))


def test_a_duplex_link_carries_messages_both_ways_over_its_one_connection(broker_factory, stomp_factory):
    """B has no connector. A's duplex link serves B's consumers with A's
    messages, and A's consumers with B's: those it pulls over the same
    connection (B cannot send on a connection A opened), whole, and
    acknowledges on B once stored on A."""
    import json
    import urllib.request

    b = broker_factory()
    status_port = free_port()
    a = broker_factory(*duplex_connector(b), "--status", f"{HOST}:{status_port}")
    to_b, to_a = f"/queue/{unique('dxb')}", f"/queue/{unique('dxa')}"
    on_b, on_a = Settling(b.port, to_b), Settling(a.port, to_a)
    typed = stomp_factory(a)
    typed_queue = f"/queue/{unique('dxt')}"
    typed.subscribe(typed_queue)
    assert wait_until(lambda: bridged(stomp_factory, a, to_b), timeout=10.0)
    # A's demand reaches B as a link's consumer (its advisory has a path).
    assert wait_until(lambda: bridged(stomp_factory, b, to_a), timeout=10.0), "A's demand never reached B"
    assert wait_until(lambda: bridged(stomp_factory, b, typed_queue), timeout=10.0)
    pa, pb = stomp_factory(a), stomp_factory(b)
    n = 200
    for i in range(n):
        pa.send(to_b, f"m{i}", receipt=(i % 50 == 49), headers={"persistent": "true"})
        pb.send(to_a, f"m{i}", receipt=(i % 50 == 49), headers={"persistent": "true"})
    pb.send(typed_queue, "whole", receipt=True, headers={"persistent": "true", "colour": "red", "type": "t1"})
    expected = [f"m{i}" for i in range(n)]
    for c in (on_b, on_a):
        assert c.wait(lambda: len(c.seen) >= n, 20.0), len(c.seen)
        assert by_number(c.seen) == expected
        assert c.wait(lambda: not c.pending, 5.0)
        assert c.duplicates == []
    [m] = typed.expect_exactly(1)
    assert (m.body, m.headers.get("colour"), m.headers.get("type")) == ("whole", "red", "t1")
    assert m.headers.get("persistent") == "true"
    assert m.headers.get("HawserNetworkHops") == "1", m.headers
    # Nothing left where the messages were sent.
    assert browse_count(stomp_factory, a, to_b) == 0
    assert browse_count(stomp_factory, b, to_a) == 0
    assert browse_count(stomp_factory, b, typed_queue) == 0

    def link() -> dict:
        with urllib.request.urlopen(f"http://{HOST}:{status_port}/status", timeout=2) as r:
            (only,) = json.load(r)["network"]
            return only

    assert wait_until(lambda: link()["forwarded"] == n and link()["pulled"] == n + 1, timeout=5.0), link()
    for c in (on_a, on_b):
        c.close()


def test_kill_9_of_either_end_of_a_duplex_link_loses_nothing_and_doubles_nothing(broker_factory, stomp_factory):
    """The producer on B, the consumer on A: the messages come by A's pulls.
    A killed mid-stream: B puts back what A had not acknowledged, and what A
    had stored already is dropped as a repeat when it comes again. Then B
    killed mid-stream: the same from the other side."""
    b = broker_factory()
    a = broker_factory(*duplex_connector(b))
    queue = f"/queue/{unique('dxkill')}"
    consumer = Settling(a.port, queue)
    assert wait_until(lambda: bridged(stomp_factory, b, queue), timeout=10.0)
    first = Producer(b.port, queue, 3000)
    first.start()
    assert consumer.wait(lambda: len(consumer.seen) >= 600, 20.0), "nothing crossed the link"
    a.kill()
    consumer.close()
    a.start()
    consumer = Settling(a.port, queue, shared=consumer)
    first.join(30)
    assert first.sent == 3000, "B was not killed: every send goes through"
    assert wait_until(lambda: len(first.confirmed_now()) == 3000, timeout=10.0)
    # Now B, while it sends the next 3000.
    second = Producer(b.port, queue, 6000)
    second.run_from = 3000
    second.start()
    assert consumer.wait(lambda: len(consumer.seen) >= 3600, 20.0), "nothing crossed after A's restart"
    b.kill()
    second.join(10)
    b.start()
    confirmed = {f"m{i}" for i in range(3000)} | second.confirmed_now()
    assert len(second.confirmed_now()) >= 100, "B was killed before it confirmed anything of the second run"
    assert wait_until(lambda: drained(consumer, confirmed, stomp_factory, [a, b], queue), timeout=40.0), (
        f"{len(confirmed - set(consumer.seen))} confirmed messages never arrived")
    assert consumer.wait(lambda: not consumer.pending, 5.0)
    assert consumer.duplicates == [], f"delivered again after being settled: {consumer.duplicates[:10]}"
    consumer.close()
