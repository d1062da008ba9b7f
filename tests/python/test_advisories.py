"""ActiveMQ's advisory topics for connections, expired and dead-lettered
messages (issue 23), subscribed to by stomp-py, and readable only by the
users that [[authorization]] allows on them."""

from __future__ import annotations

import pytest

from conftest import unique, wait_until
from test_security import passwd


def advisories(client) -> list:
    return [m for m in client.messages if m.headers.get("type") == "Advisory"]


def test_connections_are_announced_opened_and_closed(broker, stomp_factory):
    watcher = stomp_factory(broker, client_id=unique("watcher"))
    watcher.subscribe("/topic/ActiveMQ.Advisory.Connection", id="adv", ack="auto")
    # The connections already open are told first (the watcher's own).
    first = watcher.wait_messages(1)[0]
    assert first.headers["hawser.advisory.added"] == "true"
    assert first.headers["originBrokerName"]
    cid = unique("app")
    app = stomp_factory(broker, client_id=cid)
    assert wait_until(lambda: any(m.headers.get("hawser.advisory.clientId") == cid for m in advisories(watcher)))
    opened = [m for m in advisories(watcher) if m.headers.get("hawser.advisory.clientId") == cid]
    assert opened[0].headers["hawser.advisory.added"] == "true"
    assert opened[0].headers["hawser.advisory.protocol"] == "stomp"
    assert opened[0].headers["hawser.advisory.remote"].startswith("127.0.0.1:")
    app.disconnect()
    assert wait_until(lambda: any(m.headers.get("hawser.advisory.clientId") == cid
                                  and m.headers.get("hawser.advisory.added") == "false"
                                  for m in advisories(watcher)))


def test_expired_and_dead_lettered_messages_are_announced(broker, stomp_factory):
    queue = unique("perishable")
    watcher = stomp_factory(broker)
    watcher.subscribe(f"/topic/ActiveMQ.Advisory.Expired.Queue.{queue}", id="exp", ack="auto")
    watcher.subscribe(f"/topic/ActiveMQ.Advisory.MessageDLQd.Queue.{queue}", id="dlq", ack="auto")
    p = stomp_factory(broker)
    p.send(f"/queue/{queue}", "gone stale", headers={"persistent": "true", "expires": "1", "kind": "price",
                                                     "correlation-id": "c-1"})
    got = watcher.wait_messages(2, timeout=10)
    by_topic = {m.headers["destination"]: m for m in got}
    dlqd = by_topic[f"/topic/ActiveMQ.Advisory.MessageDLQd.Queue.{queue}"]
    expired = by_topic[f"/topic/ActiveMQ.Advisory.Expired.Queue.{queue}"]
    # Dead-lettered first, then expired, as ActiveMQ orders them.
    assert [m.headers["destination"] for m in got] == [dlqd.headers["destination"], expired.headers["destination"]]
    for m in (dlqd, expired):
        assert m.headers["type"] == "Advisory"
        assert m.body == "", "the body stays out, as ActiveMQ's includeBodyForAdvisory=false"
        assert m.headers["kind"] == "price" and m.headers["correlation-id"] == "c-1"
        assert m.headers["orignalMessageId"]
        assert m.headers.get("persistent") != "true"
    # The message itself is in the DLQ.
    c = stomp_factory(broker)
    c.subscribe("/queue/ActiveMQ.DLQ", id="d", ack="auto", headers={"selector": "kind = 'price'"})
    assert any(m.body == "gone stale" for m in c.wait_messages(1))


def test_advisories_are_read_only_by_those_allowed(broker_factory, stomp_factory, tmp_path):
    users = tmp_path / "users"
    for user, group in (("ops", "monitors"), ("app", "apps")):
        assert passwd(users, user, f"pw-{user}", "--groups", group).returncode == 0
    config = tmp_path / "hawser.toml"
    config.write_text(
        '[[authorization]]\ntopic = "ActiveMQ.Advisory.>"\nread = "monitors"\nwrite = "monitors"\n'
        'admin = "monitors"\n\n'
        '[[authorization]]\nqueue = ">"\nread = "apps"\nwrite = "apps"\nadmin = "apps"\n')
    b = broker_factory("--users-file", str(users), "--config", str(config))
    ops = stomp_factory(b, headers={"login": "ops", "passcode": "pw-ops"})
    ops.subscribe("/topic/ActiveMQ.Advisory.Connection", id="a", ack="auto")
    assert ops.wait_messages(1)[0].headers["hawser.advisory.user"] == "ops"
    app = stomp_factory(b, headers={"login": "app", "passcode": "pw-app"})
    assert wait_until(lambda: any(m.headers.get("hawser.advisory.user") == "app" for m in advisories(ops)))
    with pytest.raises(Exception):
        app.subscribe("/topic/ActiveMQ.Advisory.Connection", id="a", ack="auto")
    err = app.wait_error()
    assert "not authorized to read" in err.headers.get("message", "")
