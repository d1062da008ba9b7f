"""Network of brokers (issue 21): a producer on one broker, consumers on
another, joined by ActiveMQ's `static:(...)` network connector. Clients are
stomp-py; the brokers are real processes.

Every run counts: each confirmed message delivered, none twice, none left
on the producer's broker at the end (a queue browser's `browser:end` says
how many are left, rather than waiting for something not to come)."""

from __future__ import annotations

from conftest import HOST, unique, wait_until


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


def bridged(stomp_factory, broker, queue: str) -> bool:
    """Whether ``broker`` has a network link's consumer on ``queue``: its own
    consumer advisories say so (with the link's path)."""
    name = queue.removeprefix("/queue/")
    c = stomp_factory(broker)
    c.subscribe(f"/topic/ActiveMQ.Advisory.Consumer.Queue.{name}", id="adv")
    # Those there are come at once, before the subscription's receipt.
    c.listener.wait(lambda: len(c.listener.messages) >= 2, 0.5)
    return any("hawser.advisory.networkPath" in m.headers for m in c.messages)
