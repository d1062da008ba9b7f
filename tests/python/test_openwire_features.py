"""OpenWire: the JMS features a program on ActiveMQ's own Java client (Debian's
libactivemq-java, activemq-client 5.17) relies on, against Hawser:
tests/java/JmsFeatures.java, compiled once per run, one check per broker.

Every message type with its body exactly as sent (the broker keeps map,
stream and object bodies opaque; the Java client deserializes), every
acknowledgement mode, local transactions, selectors on queues and topics,
durable subscribers (across restarts too), wildcards, priorities, expiry,
redelivery into ActiveMQ.DLQ, and non-persistent messages (also far beyond
memory, where they spill to the store)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import HOST
from jms_support import JAVA_TIMEOUT_S, compile_java, java_command


@pytest.fixture(scope="module")
def features(tmp_path_factory) -> Path:
    """The compiled JmsFeatures program's class directory."""
    return compile_java(tmp_path_factory, "JmsFeatures")


def run_check(classes: Path, broker, check: str) -> str:
    """Runs one check of JmsFeatures against ``broker``; it must pass."""
    url = f"tcp://{HOST}:{broker.openwire_port}"
    proc = subprocess.run(java_command(classes, "JmsFeatures", url, check),
                          capture_output=True, text=True, timeout=JAVA_TIMEOUT_S)
    assert proc.returncode == 0, (f"{check} failed:\n{proc.stdout[-5000:]}\n{proc.stderr[-5000:]}\n"
                                  f"broker log:\n{broker.log_text()[-3000:]}")
    assert "FAIL" not in proc.stdout
    return proc.stdout


def test_every_message_type_arrives_exactly_as_sent(broker, features):
    out = run_check(features, broker, "types")
    assert "ok object: the client deserializes what was sent" in out
    assert "ok received all 13 messages, exactly as sent" in out


def test_every_message_type_survives_a_restart_and_non_persistent_messages_do_not(broker, features):
    run_check(features, broker, "types-send")
    broker.restart()
    out = run_check(features, broker, "types-receive")
    assert "ok received all 13 messages, exactly as sent" in out
    assert "ok only the persistent message survived the restart" in out


def test_auto_acknowledge_takes_what_was_received_and_only_that(broker, features):
    out = run_check(features, broker, "ack-auto")
    assert "ok every auto-acknowledged message is gone" in out
    assert "ok and none went to the DLQ" in out


def test_client_acknowledge_is_cumulative_and_redelivers_the_rest(broker, features):
    out = run_check(features, broker, "ack-client")
    assert "ok acknowledging a later message acknowledged the earlier ones" in out


def test_dups_ok_acknowledge(broker, features):
    out = run_check(features, broker, "ack-dups-ok")
    assert "ok everything received is gone after the close" in out


def test_individual_acknowledge_takes_only_what_it_names(broker, features):
    out = run_check(features, broker, "ack-individual")
    assert "ok the acknowledged i1 and i3 are gone" in out


def test_local_transactions_commit_and_roll_back(broker, features):
    out = run_check(features, broker, "transactions")
    assert "ok only the committed reply was published" in out
    assert "ok the committed job is gone" in out


def test_selectors_on_a_queue(broker, features):
    out = run_check(features, broker, "selectors-queue")
    assert "ok and the blue one" in out


def test_selectors_on_a_topic(broker, features):
    out = run_check(features, broker, "selectors-topic")
    assert "ok a subscriber without a selector got all" in out


def test_durable_subscribers_keep_messages_while_offline(broker, features):
    out = run_check(features, broker, "durable")
    assert "ok an active durable subscription cannot be deleted" in out
    assert "ok a new subscription of the unsubscribed name starts empty" in out


def test_durable_subscribers_keep_messages_across_a_restart(broker, features):
    run_check(features, broker, "durable-offline")
    broker.restart()
    out = run_check(features, broker, "durable-receive")
    assert "ok all five were kept across the restart" in out
    broker.restart()
    out = run_check(features, broker, "durable-gone")
    assert "ok the unsubscribed subscription stayed deleted across the restart" in out


def test_wildcard_topic_subscribers(broker, features):
    out = run_check(features, broker, "wildcards")
    assert "ok PRICE.*.X matches one level" in out


def test_higher_priority_first_on_a_queue_with_a_backlog(broker, features):
    out = run_check(features, broker, "priority")
    assert "ok all 15 by priority" in out


def test_expired_messages_are_not_delivered(broker, features):
    out = run_check(features, broker, "expiry")
    assert "ok the expired messages were not delivered" in out
    assert "ok the expired persistent message is in ActiveMQ.DLQ" in out


def test_a_message_rolled_back_past_the_clients_maximum_redeliveries_lands_in_the_dlq(broker, features):
    out = run_check(features, broker, "dlq")
    assert "ok no fourth delivery: maximumRedeliveries is 2" in out
    assert "ok the poison message left its queue" in out


def test_non_persistent_messages(broker, features):
    out = run_check(features, broker, "non-persistent")
    assert "ok nothing more" in out


def test_non_persistent_messages_far_beyond_memory_spill_and_come_back_in_order(broker_factory, features):
    # 8,000 messages of 1 KiB through a broker with 1 MiB of memory: with
    # synchronous sends, a held producer would time out the check.
    b = broker_factory("--max-pending-memory-bytes", str(1 << 20))
    out = run_check(features, b, "non-persistent-backlog")
    assert "ok all 8000 received in order" in out


def test_users_authenticate_and_wrong_credentials_are_a_jms_security_exception(broker_factory, features, tmp_path):
    from test_security import users_file
    b = broker_factory("--users-file", str(users_file(tmp_path)))
    out = run_check(features, b, "login")
    assert "ok user alice refused: user name or password is invalid" in out
    assert "ok user mallory refused" in out
    assert "ok user null refused: authentication required" in out


def test_a_client_id_with_a_users_durable_subscription_is_refused_to_other_users(broker_factory, features, tmp_path):
    from test_security import users_file
    b = broker_factory("--users-file", str(users_file(tmp_path)))
    out = run_check(features, b, "client-id-owner")
    assert "ok bob refused alice's client id: client id \"owned-app\" belongs to another user" in out
    b.restart(kill=True)
    out = run_check(features, b, "client-id-owner-after")
    assert "ok bob refused alice's client id" in out
    assert "ok with alice's subscriptions gone, bob may use the client id" in out


def test_consumer_priority_from_destination_options(broker, features):
    out = run_check(features, broker, "consumer-priority")
    assert "ok priority 9 took its window first" in out
    assert "ok priority 1 the rest" in out


def test_connection_advisories_carry_what_activemqs_classes_read(broker, features):
    out = run_check(features, broker, "advisories")
    assert "ok a new connection is announced with its client id" in out
    assert "ok its close is announced as a RemoveInfo with the same id" in out


def test_producer_advisories_carry_what_activemqs_classes_read(broker, features):
    out = run_check(features, broker, "producer-advisories")
    assert "ok a new producer is announced as a ProducerInfo" in out
    assert "ok its close is announced as a RemoveInfo with the same producer id" in out
