"""Monitoring (issue 23): the admin endpoint's /metrics in Prometheus's
format, scraped by a real Prometheus server (Debian's ``prometheus``), the
health probes, and the alert rules shipped in ops/prometheus, checked and
unit-tested with ``promtool``.

The numbers are driven by stomp-py: messages sent, acknowledged, expired
and dead-lettered, and the endpoint must say so (values are sampled by the
engine once a second)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import HOST, REPO, free_port, unique, wait_until

RULES = REPO / "ops" / "prometheus"
needs_prometheus = pytest.mark.skipif(shutil.which("prometheus") is None or shutil.which("promtool") is None,
                                      reason="Debian's prometheus package is not installed")


def get(port: int, path: str, auth: tuple[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(f"http://{HOST}:{port}{path}")
    if auth:
        import base64
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def parse(text: str) -> dict[tuple[str, tuple], float]:
    """Prometheus's text format: {(name, ((label, value), ...)): value}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, value = line.rsplit(" ", 1)
        if "{" in head:
            name, rest = head.split("{", 1)
            labels = []
            for part in rest.rstrip("}").split('",'):
                k, v = part.split("=", 1)
                labels.append((k, v.strip('"')))
            out[(name, tuple(sorted(labels)))] = float(value)
        else:
            out[(head, ())] = float(value)
    return out


def metric(text: str, name: str, **labels: str) -> float | None:
    return parse(text).get((name, tuple(sorted(labels.items()))))


@pytest.fixture
def admin_broker(broker_factory):
    port = free_port()
    b = broker_factory("--admin", f"{HOST}:{port}")
    b.admin_port = port
    return b


def test_metrics_count_what_clients_did(admin_broker, stomp_factory):
    b = admin_broker
    queue = unique("metrics")
    producer = stomp_factory(b)
    for i in range(5):
        producer.send(f"/queue/{queue}", f"m{i}", receipt=(i == 4), headers={"persistent": "true"})
    producer.send(f"/queue/{queue}", "old", receipt=True, headers={"persistent": "true", "expires": "1"})
    consumer = stomp_factory(b)
    consumer.subscribe(f"/queue/{queue}", ack="client-individual")
    got = consumer.expect_exactly(5, timeout=10.0)
    for m in got[:3]:
        consumer.ack(m)
    d = f"queue://{queue}"

    def scraped():
        status, text = get(b.admin_port, "/metrics")
        assert status == 200
        return text

    assert wait_until(lambda: metric(scraped(), "hawser_destination_dequeued_total", destination=d) == 3,
                      timeout=10.0), scraped()
    text = scraped()
    assert metric(text, "hawser_destination_enqueued_total", destination=d) == 6
    assert metric(text, "hawser_destination_expired_total", destination=d) == 1
    assert metric(text, "hawser_destination_inflight", destination=d) == 2
    assert metric(text, "hawser_destination_consumers", destination=d) == 1
    # The expired persistent message went to the DLQ, as in ActiveMQ.
    assert metric(text, "hawser_destination_dead_lettered_total", destination=d) == 1
    assert metric(text, "hawser_destination_enqueued_total", destination="queue://ActiveMQ.DLQ") == 1
    assert metric(text, "hawser_connections", protocol="stomp") == 2
    assert metric(text, "hawser_role", role="standalone") == 1
    assert metric(text, "hawser_serving") == 1
    assert metric(text, "hawser_store_failed") == 0
    assert metric(text, "hawser_memory_limit_bytes") > 0
    # The journal's fsyncs: each persistent send waited for one, and group
    # commit may have put several in one.
    fsyncs = metric(text, "hawser_journal_fsync_seconds_count")
    assert fsyncs and fsyncs == metric(text, "hawser_journal_fsync_seconds_bucket", le="+Inf")
    assert 0 < fsyncs <= metric(text, "hawser_journal_fsync_batch_records_sum")
    assert metric(text, "hawser_journal_fsync_batch_records_sum") >= 6
    # Prometheus's own checker accepts the exposition.
    if shutil.which("promtool"):
        check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True,
                               timeout=30)
        assert check.returncode == 0, check.stdout + check.stderr


def test_dstat_prints_every_destination_as_activemqs_does(admin_broker, stomp_factory):
    from conftest import HAWSER_BIN

    b = admin_broker
    queue, topic = unique("dstatq"), unique("dstatt")
    c = stomp_factory(b)
    c.subscribe(f"/topic/{topic}")
    for i in range(4):
        c.send(f"/queue/{queue}", f"m{i}", receipt=(i == 3))
    c.send(f"/topic/{topic}", "t", receipt=True)

    def dstat(*args: str) -> str:
        out = subprocess.run([HAWSER_BIN, "dstat", "--admin", f"{HOST}:{b.admin_port}", *args],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return out.stdout

    assert wait_until(lambda: f"queue://{queue}" in dstat(), timeout=10.0)
    lines = dstat("queues").splitlines()
    assert lines[0].split()[:3] == ["Name", "Queue", "Size"]
    row = next(line.split() for line in lines if line.startswith(f"queue://{queue}"))
    assert row[1:] == ["4", "0", "0", "4", "0", "0", "0"], row
    assert not any(line.startswith("topic://") for line in lines)
    rows = {r["destination"]: r for r in json.loads(dstat("topics", "--json"))}
    assert rows[f"topic://{topic}"]["enqueued"] == 1
    assert rows[f"topic://{topic}"]["consumers"] == 1


def test_a_destination_name_cannot_break_the_format(admin_broker, stomp_factory):
    b = admin_broker
    name = unique("odd") + 'a"b'
    stomp_factory(b).send(f"/queue/{name}", "x", receipt=True)
    escaped = f'destination="queue://{name[:-3]}a\\"b"'
    assert wait_until(lambda: escaped in get(b.admin_port, "/metrics")[1], timeout=10.0), (
        get(b.admin_port, "/metrics")[1][-1500:])
    if shutil.which("promtool"):
        check = subprocess.run(["promtool", "check", "metrics"], input=get(b.admin_port, "/metrics")[1],
                               capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stdout + check.stderr


def test_metrics_need_credentials_and_the_probes_do_not(broker_factory, tmp_path):
    from test_security import PASSWORDS, users_file

    port = free_port()
    b = broker_factory("--users-file", str(users_file(tmp_path)), "--admin", f"{HOST}:{port}")
    assert get(port, "/metrics")[0] == 401
    assert get(port, "/metrics", auth=("bob", "wrong"))[0] == 401
    status, text = get(port, "/metrics", auth=("bob", PASSWORDS["bob"]))
    assert status == 200 and metric(text, "hawser_serving") == 1
    assert get(port, "/health/live") == (200, "live\n")
    assert get(port, "/health/ready") == (200, "ready: standalone\n")


def test_health_probes_know_the_role(tmp_path):
    """A standby is live and not ready; its master is both; the standby
    that takes over becomes ready and counts a takeover."""
    from test_stomppy_master_slave import SharedBroker, wait_for_master

    data = tmp_path / "shared"
    pair = [SharedBroker(tmp_path / n, data, n) for n in ("M", "S")]
    try:
        pair[0].start()
        assert wait_for_master(pair[:1], timeout=15.0) is pair[0]
        pair[1].start()
        assert wait_until(lambda: get(pair[1].status_port, "/health/live")[0] == 200, timeout=10.0)
        m, s = pair[0].status_port, pair[1].status_port
        assert get(m, "/health/ready") == (200, "ready: master\n")
        assert get(s, "/health/ready") == (503, "not ready: slave\n")
        assert get(s, "/health/live") == (200, "live\n")
        status, text = get(s, "/metrics")
        assert status == 200
        assert metric(text, "hawser_role", role="slave") == 1
        assert metric(text, "hawser_serving") == 0
        # The master goes: the standby becomes ready.
        pair[0].kill()
        assert wait_until(lambda: get(s, "/health/ready")[0] == 200, timeout=15.0)
        text = get(s, "/metrics")[1]
        assert metric(text, "hawser_role", role="master") == 1
        assert metric(text, "hawser_takeovers_total") == 1
    finally:
        for b in pair:
            b.stop()


@needs_prometheus
def test_the_alert_rules_are_valid_and_their_unit_tests_pass():
    check = subprocess.run(["promtool", "check", "rules", "hawser-alerts.yml"], cwd=RULES, capture_output=True,
                           text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    test = subprocess.run(["promtool", "test", "rules", "hawser-alerts.test.yml"], cwd=RULES, capture_output=True,
                          text=True, timeout=60)
    assert test.returncode == 0, test.stdout + test.stderr


@needs_prometheus
def test_a_real_prometheus_scrapes_the_broker_and_evaluates_the_rules(admin_broker, stomp_factory, tmp_path):
    b = admin_broker
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - {RULES / 'hawser-alerts.yml'}
scrape_configs:
  - job_name: hawser
    static_configs:
      - targets: ['{HOST}:{b.admin_port}']
""")
    log = open(tmp_path / "prometheus.log", "wb")
    proc = subprocess.Popen(["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address={HOST}:{port}"], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    try:
        queue = unique("scraped")
        producer = stomp_factory(b)
        for i in range(7):
            producer.send(f"/queue/{queue}", f"m{i}", receipt=(i == 6))

        def query(q: str) -> list:
            url = f"http://{HOST}:{port}/api/v1/query?" + urllib.parse.urlencode({"query": q})
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    return json.loads(r.read())["data"]["result"]
            except (urllib.error.URLError, ConnectionError, KeyError):
                return []

        wanted = f'hawser_destination_depth{{destination="queue://{queue}"}}'
        assert wait_until(lambda: [float(r["value"][1]) for r in query(wanted)] == [7.0], timeout=30.0), (
            (tmp_path / "prometheus.log").read_text()[-2000:])
        assert [r["value"][1] for r in query('up{job="hawser"}')] == ["1"]

        # Every rule is loaded and evaluated without error.
        def rules() -> list:
            try:
                with urllib.request.urlopen(f"http://{HOST}:{port}/api/v1/rules", timeout=5) as r:
                    groups = json.loads(r.read())["data"]["groups"]
            except (urllib.error.URLError, ConnectionError):
                return []
            return [rule for g in groups for rule in g["rules"]]

        assert wait_until(lambda: len(rules()) == 12 and all(r.get("lastEvaluation", "").startswith("20")
                                                             for r in rules()), timeout=30.0)
        assert all(r["health"] == "ok" for r in rules()), [r for r in rules() if r["health"] != "ok"]

        # The Grafana dashboard's queries are PromQL this Prometheus runs,
        # over metrics the broker exposes.
        import re
        dashboard = json.loads((REPO / "ops" / "grafana" / "hawser-dashboard.json").read_text())
        exposed = set(re.findall(r"^# TYPE (hawser_[a-z_]+)", get(b.admin_port, "/metrics")[1], re.M))
        for p in dashboard["panels"]:
            for t in p["targets"]:
                url = f"http://{HOST}:{port}/api/v1/query?" + urllib.parse.urlencode({"query": t["expr"]})
                with urllib.request.urlopen(url, timeout=5) as r:
                    assert json.loads(r.read())["status"] == "success", t["expr"]
                # (A histogram's series are its family's name and a suffix.)
                used = {n if n in exposed else re.sub(r"_(bucket|sum|count)$", "", n)
                        for n in re.findall(r"hawser_[a-z_]+", t["expr"])}
                assert used <= exposed, (p["title"], used - exposed)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def test_flow_control_holds_are_counted(broker_factory, stomp_factory):
    """A producer held at the memory limit shows in
    hawser_flow_control_held_total{resource="memory"}; a consumer frees it."""
    import threading

    port = free_port()
    b = broker_factory("--admin", f"{HOST}:{port}", "--max-pending-memory-bytes", str(64 * 1024),
                       "--max-temp-bytes", "0")
    queue = f"/queue/{unique('held')}"
    producer = stomp_factory(b)
    body = "x" * 1024
    sent = threading.Event()

    def send_all():
        for i in range(400):
            producer.send(queue, body)
        producer.send(queue, "last", receipt=True)
        sent.set()

    threading.Thread(target=send_all, daemon=True).start()

    def held() -> float:
        return metric(get(port, "/metrics")[1], "hawser_flow_control_held_total", resource="memory") or 0

    assert wait_until(lambda: held() >= 1, timeout=15.0), get(port, "/metrics")[1][-3000:]
    assert not sent.is_set(), "the producer was never held"
    consumer = stomp_factory(b)
    consumer.subscribe(queue)
    assert sent.wait(30.0), "the producer was not let go"
    text = get(port, "/metrics")[1]
    assert metric(text, "hawser_flow_control_refused_total", resource="memory") == 0
