"""Master/slave on a shared store with ActiveMQ's own Java client, unchanged: the
article's failover URI, ``failover:(tcp://A,tcp://B)?randomize=false``, across
a pair of ``hawser serve --ha shared-store`` brokers whose master is killed
with SIGKILL again and again and restarted as the standby.

tests/java/JmsFailoverDrill.java runs twice, concurrently: a producer of
persistent TextMessages "1", "2", ... with synchronous sends (it prints a
number only once ``send()`` returned: confirmed), and a consumer in
AUTO_ACKNOWLEDGE mode (it prints each number the application received).

Checks: every confirmed number was received (0 lost); no number was given to
the application twice (0 duplicates); both clients report every interruption
and resume, and the producer and the consumer both make progress after each
kill; no client reports an exception; the queue is empty at the end.

Where duplicates would come from, and what stops them: the send in flight when
the master dies is sent again by the client with the same message id, and the
broker's producer windows drop it if the store has it (still confirming it);
an acknowledgement in flight (acks are asynchronous) is lost with the master,
so the new one delivers that message again, and the client's audit drops it
with a poison ack, which sends it to the DLQ, as with ActiveMQ. So the DLQ may
hold a few messages at the end, each one the consumer had received.
"""

from __future__ import annotations

import random
import subprocess
import threading
import time
from collections import Counter

import pytest

from conftest import HAWSER_BIN, HOST, unique
from jms_support import compile_java, java_command
from test_stomppy_master_slave import SharedBroker, wait_for_master

SEED = 0x0A11_5EED
KILLS = 10
PAUSE_S = (0.5, 1.5)              # the master serves this long between kills
RESUME_TIMEOUT_S = 15.0           # both clients must be back on a broker within this after a kill
PROGRESS_TIMEOUT_S = 10.0         # then each must confirm or receive another message within this
PRODUCER_MAX_S = 50               # hard bounds the Java programs keep themselves
PRODUCER_MAX_COUNT = 1_000_000
CONSUMER_MAX_S = 60
DRAIN_IDLE_MS = 3000              # the consumer stops draining after this long without a message
EXIT_TIMEOUT_S = 40.0


@pytest.fixture(scope="module")
def drill(tmp_path_factory):
    """The compiled drill's class directory."""
    return compile_java(tmp_path_factory, "JmsFailoverDrill")


class Program:
    """One run of the drill program; its output lines are parsed as they come."""

    def __init__(self, classes, name: str, *args: str):
        self.name = name
        self.lock = threading.Lock()
        self.numbers: list[int] = []    # "sent N" or "got N", in order
        self.redelivered = 0            # "got N redelivered"
        self.interrupted = 0
        self.resumed = 0
        self.errors: list[str] = []
        self.done = None
        self.lines: list[str] = []
        self.proc = subprocess.Popen(java_command(classes, "JmsFailoverDrill", *args),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.stderr = ""
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.err_reader = threading.Thread(target=self._read_err, daemon=True)
        self.err_reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            with self.lock:
                self.lines.append(line)
                word, _, rest = line.partition(" ")
                if word in ("sent", "got"):
                    n, _, flag = rest.partition(" ")
                    self.numbers.append(int(n))
                    self.redelivered += flag == "redelivered"
                elif word == "interrupted":
                    self.interrupted += 1
                elif word == "resumed":
                    self.resumed += 1
                elif word == "done":
                    self.done = line
                else:
                    self.errors.append(line)

    def _read_err(self) -> None:
        self.stderr = self.proc.stderr.read()

    def count(self) -> int:
        with self.lock:
            return len(self.numbers)

    def wait(self, cond, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if cond(self):
                    return True
            time.sleep(0.02)
        with self.lock:
            return bool(cond(self))

    def finish(self, timeout: float = EXIT_TIMEOUT_S):
        """Closes its stdin (the program's "stop") and waits for it to exit.
        Returns its exit code, None if it had to be killed."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            code = None
        self.reader.join(5.0)
        self.err_reader.join(5.0)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def tail(self, n: int = 15) -> str:
        with self.lock:
            return "\n".join(self.lines[-n:]) + "\n" + self.stderr[-3000:]


def browse(broker: SharedBroker, queue: str) -> list[str]:
    """The bodies of what ``queue`` holds, browsed over STOMP."""
    proc = subprocess.run([HAWSER_BIN, "browse", "--url", f"tcp://{HOST}:{broker.port}", "-d", f"/queue/{queue}"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_jms_failover_uri_follows_the_master_of_a_pair_through_repeated_kills(tmp_path, drill):
    rng = random.Random(SEED)
    data = tmp_path / "store"
    brokers = [SharedBroker(tmp_path / n, data, n) for n in ("A", "B")]
    queue = unique("jms-master-slave")
    programs: list[Program] = []
    started = time.monotonic()
    kills = 0
    try:
        brokers[0].start()
        assert wait_for_master(brokers[:1]) is brokers[0]
        brokers[1].start()
        assert brokers[1].role() == "slave"
        url = "failover:(" + ",".join(f"tcp://{HOST}:{b.openwire_port}" for b in brokers) + ")?randomize=false"
        consumer = Program(drill, "consumer", "consume", url, queue, str(CONSUMER_MAX_S), str(DRAIN_IDLE_MS))
        programs.append(consumer)
        producer = Program(drill, "producer", "produce", url, queue, str(PRODUCER_MAX_COUNT), str(PRODUCER_MAX_S))
        programs.append(producer)
        assert producer.wait(lambda p: len(p.numbers) >= 20, PROGRESS_TIMEOUT_S + 10), \
            f"producer made no progress:\n{producer.tail()}"
        assert consumer.wait(lambda c: len(c.numbers) >= 1, PROGRESS_TIMEOUT_S), \
            f"consumer received nothing:\n{consumer.tail()}"

        for i in range(KILLS):
            time.sleep(rng.uniform(*PAUSE_S))
            master = wait_for_master(brokers)
            sent_before, got_before = producer.count(), consumer.count()
            resumed_before = (producer.resumed, consumer.resumed)
            master.kill()
            kills += 1
            wait_for_master([b for b in brokers if b is not master])
            assert producer.wait(lambda p: p.resumed > resumed_before[0], RESUME_TIMEOUT_S), \
                f"kill {i}: the producer did not resume:\n{producer.tail()}"
            assert consumer.wait(lambda c: c.resumed > resumed_before[1], RESUME_TIMEOUT_S), \
                f"kill {i}: the consumer did not resume:\n{consumer.tail()}"
            master.start()
            assert master.role() == "slave", f"kill {i}: the restarted broker is not the standby"
            assert producer.wait(lambda p: len(p.numbers) > sent_before, PROGRESS_TIMEOUT_S), \
                f"kill {i}: no confirmed send after the takeover:\n{producer.tail()}"
            assert consumer.wait(lambda c: len(c.numbers) > got_before, PROGRESS_TIMEOUT_S), \
                f"kill {i}: nothing received after the takeover:\n{consumer.tail()}"

        assert producer.finish() == 0, f"producer:\n{producer.tail()}"
        assert consumer.finish() == 0, f"consumer:\n{consumer.tail()}"
        master = wait_for_master(brokers)
        left, dead = browse(master, queue), browse(master, "ActiveMQ.DLQ")
    finally:
        for p in programs:
            p.kill()
        for b in brokers:
            b.stop()

    confirmed = producer.numbers
    received = Counter(consumer.numbers)
    lost = sorted(set(confirmed) - set(received))
    duplicates = {n: k for n, k in received.items() if k > 1}
    unconfirmed = sorted(set(received) - set(confirmed))
    print(f"\nJMS failover drill: {kills} kills in {time.monotonic() - started:.1f} s; confirmed "
          f"{len(confirmed)}, received {len(received)} distinct ({consumer.redelivered} marked "
          f"redelivered), lost {len(lost)}, duplicates {len(duplicates)}, received unconfirmed "
          f"{len(unconfirmed)}; interruptions: producer {producer.interrupted}, consumer "
          f"{consumer.interrupted}; left in the queue {len(left)}, dead-lettered {len(dead)}")
    assert len(confirmed) == len(set(confirmed)), "the producer confirmed a number twice"
    assert not lost, f"{len(lost)} confirmed messages never received: {lost[:20]}"
    assert not duplicates, f"{len(duplicates)} numbers received more than once: {dict(list(duplicates.items())[:20])}"
    assert not producer.errors and not consumer.errors, \
        f"client errors: producer {producer.errors[:5]}, consumer {consumer.errors[:5]}"
    assert producer.interrupted >= kills and consumer.interrupted >= kills
    assert not left, f"{len(left)} messages left in the queue: the consumer stopped getting them"
    # The client's audit refuses a message it had already given the application
    # (its ack was lost with the broker) with a poison ack: only those are dead letters.
    not_received = sorted(set(map(int, dead)) - set(received))
    assert not not_received, f"dead-lettered but never received: {not_received[:20]}"
