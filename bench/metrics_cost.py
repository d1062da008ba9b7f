#!/usr/bin/env python3
"""What monitoring costs: S1 and S3 with a real Prometheus server scraping
the broker's /metrics every second, against the same with no scrape, in
the same run, alternating (none, scraped, none, scraped...) so that a slow
spell of the machine falls on both.

Usage: bench/metrics_cost.py [--hawser target/release/hawser] [--scenarios S1,S3]
                             [--runs 3] [--seconds 8] [--warmup 4] [--json out.json]

Each run starts a fresh broker (its admin endpoint on a loopback port) and,
for the scraped runs, Debian's `prometheus` with `scrape_interval: 1s` on
that endpoint, waiting for its first scrape; the scrapes made during the
measured run are counted from Prometheus's `up` samples of the target.
Everything listens on 127.0.0.1; every process is stopped by its PID.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402

HOST = compare.HOST


class HawserAdmin(compare.Hawser):
    def __init__(self, tmp: Path, binary: str):
        super().__init__(tmp, binary)
        self.admin_port = compare.free_port()

    def command(self):
        cmd, env = super().command()
        return cmd + ["--admin", f"{HOST}:{self.admin_port}"], env


def start_prometheus(tmp: Path, target_port: int) -> tuple[subprocess.Popen, int]:
    port = compare.free_port()
    config = tmp / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: hawser\n"
                      f"    static_configs:\n      - targets: ['{HOST}:{target_port}']\n")
    log = open(tmp / "prometheus.log", "wb")
    proc = subprocess.Popen(["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp / 'tsdb'}",
                             f"--web.listen-address={HOST}:{port}"], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    return proc, port


def scrapes(port: int) -> int:
    """Scrapes Prometheus made of the broker so far (its `up` samples)."""
    q = urllib.parse.urlencode({"query": 'count_over_time(up{job="hawser"}[10m])'})
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/api/v1/query?{q}", timeout=5) as r:
            result = json.loads(r.read())["data"]["result"]
        return int(float(result[0]["value"][1])) if result else 0
    except (OSError, KeyError, ValueError):
        return 0


def scrape_cpu(hawser: str, tmp: Path, destinations: int = 100, scrapes_n: int = 1000) -> dict:
    """The broker's CPU for one scrape, measured directly: a broker with
    `destinations` queues holding a message each, scraped `scrapes_n` times
    in a row; its CPU time over them, per scrape."""
    b = HawserAdmin(tmp, hawser)
    try:
        b.start()
        for i in range(destinations):
            subprocess.run([hawser, "send", "--url", f"tcp://{HOST}:{b.port}", "-d", f"/queue/scrape.{i}", "--body", "x"],
                           capture_output=True, timeout=30, stdin=subprocess.DEVNULL, check=True)
        time.sleep(1.5)  # one engine sample
        url = f"http://{HOST}:{b.admin_port}/metrics"
        size = len(urllib.request.urlopen(url, timeout=5).read())
        pids = b.pids()
        cpu0 = compare.cpu_s(pids)
        t0 = time.monotonic()
        for _ in range(scrapes_n):
            urllib.request.urlopen(url, timeout=5).read()
        wall = time.monotonic() - t0
        cpu = compare.cpu_s(pids) - cpu0
    finally:
        b.stop()
    return {"destinations": destinations, "scrapes": scrapes_n, "bytes_per_scrape": size,
            "broker_cpu_us_per_scrape": round(cpu / scrapes_n * 1e6, 1), "wall_ms_per_scrape": round(wall / scrapes_n * 1e3, 2),
            "cpu_share_at_one_scrape_per_second_percent": round(cpu / scrapes_n * 100, 4)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hawser", default="target/release/hawser")
    ap.add_argument("--scenarios", default="S1,S3")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--warmup", type=float, default=4)
    ap.add_argument("--json")
    a = ap.parse_args()
    a.hawser = str(Path(a.hawser).resolve())
    results: dict = {"command": "python3 bench/metrics_cost.py " + " ".join(shlex.quote(x) for x in sys.argv[1:]),
                     "runs": []}
    with tempfile.TemporaryDirectory(prefix="hawser-metrics-") as t:
        tmp = Path(t)
        n = 0
        for run in range(a.runs):
            for sid in a.scenarios.split(","):
                sc = compare.SCENARIOS[sid]
                for scraped in (False, True):
                    n += 1
                    d = tmp / f"{n}"
                    d.mkdir()
                    b = HawserAdmin(d, a.hawser)
                    prom = None
                    try:
                        b.start()
                        if scraped:
                            prom, prom_port = start_prometheus(d, b.admin_port)
                            deadline = time.monotonic() + 30
                            while scrapes(prom_port) == 0 and time.monotonic() < deadline:
                                time.sleep(0.2)
                        time.sleep(1)
                        dest = f"/queue/metrics.{sid}"
                        base = [a.hawser, "bench", "--broker", f"tcp://{HOST}:{b.port}", *b.bench_flags(),
                                "--scenario", sc.id]
                        compare.run_bench_command(base + ["--destination", dest + ".warm", *sc.flags(a.warmup)],
                                                  a.warmup)
                        before = scrapes(prom_port) if scraped else 0
                        r = compare.run_bench_command(base + ["--destination", dest, *sc.flags(a.seconds)],
                                                      a.seconds, b.pids())
                        if scraped:
                            r["scrapes_during_run"] = scrapes(prom_port) - before
                    finally:
                        if prom is not None:
                            prom.terminate()
                            try:
                                prom.wait(timeout=15)
                            except subprocess.TimeoutExpired:
                                prom.kill()
                                prom.wait(timeout=10)
                        b.stop()
                    r.update(scenario=sid, scraped=scraped, run=run + 1)
                    results["runs"].append(r)
                    print(json.dumps(r), flush=True)
    summary = {}
    for sid in a.scenarios.split(","):
        rates = {s: [r["msgs_per_sec"] for r in results["runs"]
                     if r["scenario"] == sid and r["scraped"] == s and "msgs_per_sec" in r] for s in (False, True)}
        if rates[False] and rates[True]:
            none, scraped = statistics.median(rates[False]), statistics.median(rates[True])
            summary[sid] = {"none": none, "scraped": scraped, "cost_percent": round((1 - scraped / none) * 100, 2)}
    with tempfile.TemporaryDirectory(prefix="hawser-scrape-") as t:
        summary["per_scrape"] = scrape_cpu(a.hawser, Path(t))
    results["summary"] = summary
    print(json.dumps(summary), flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
