#!/usr/bin/env python3
"""S1, S2 and S4 with the messages in PostgreSQL: Hawser's PostgreSQL store
against its journal, and against ActiveMQ 5.17's JDBC store on the same
PostgreSQL server, in the same run.

Usage: bench/pg_store.py [--hawser target/release/hawser]
                         [--brokers hawser-journal,hawser-pg,activemq-jdbc]
                         [--scenarios S1,S2,S4] [--seconds 8] [--warmup 4] [--runs 1]
                         [--json out.json]

One PostgreSQL 15 server (Debian's, `/usr/lib/postgresql/15/bin`; a fresh
cluster in a temporary directory, fsync on, synchronous_commit on) serves
both brokers, a fresh database for every run. ActiveMQ uses its
`jdbcPersistenceAdapter` with PostgreSQL's JDBC driver
(`libpostgresql-jdbc-java`) behind a commons-dbcp2 pool
(`libcommons-dbcp2-java`), as ActiveMQ's documentation configures it.
Every broker runs each scenario with the same `hawser bench` command after
a warm-up of the same scenario; the broker's CPU per message (the
database's not counted) is read from /proc. Everything listens on
127.0.0.1 and every process is stopped by its PID.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "python"))
import compare  # noqa: E402
import pg  # noqa: E402

HOST = compare.HOST
JARS = [Path("/usr/share/java/postgresql.jar"), Path("/usr/share/java/commons-dbcp2.jar"),
        Path("/usr/share/java/commons-pool2.jar")]

JDBC_XML = """<beans xmlns="http://www.springframework.org/schema/beans"
       xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
       xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans-2.0.xsd
                           http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <bean id="postgres-ds" class="org.apache.commons.dbcp2.BasicDataSource" destroy-method="close">
    <property name="driverClassName" value="org.postgresql.Driver"/>
    <property name="url" value="jdbc:postgresql://{host}:{pg_port}/{db}"/>
    <property name="username" value="hawser"/>
    <property name="maxTotal" value="32"/>
    <property name="poolPreparedStatements" value="true"/>
  </bean>
  <broker xmlns="http://activemq.apache.org/schema/core" useJmx="false" brokerName="bench" dataDirectory="{dir}/data">
    <persistenceAdapter>
      <jdbcPersistenceAdapter dataSource="#postgres-ds" createTablesOnStartup="true"/>
    </persistenceAdapter>
    <transportConnectors>
      <transportConnector name="stomp" uri="stomp://{host}:{port}"/>
    </transportConnectors>
  </broker>
</beans>
"""


class HawserPg(compare.Hawser):
    kind = "hawser-pg"

    def __init__(self, tmp: Path, binary: str, url: str):
        super().__init__(tmp, binary)
        self.url = url

    def command(self):
        cmd, env = super().command()
        return cmd + ["--store", "postgres", "--store-url", self.url], env


class ActiveMQJdbc(compare.ActiveMQ):
    kind = "activemq-jdbc"

    def __init__(self, tmp: Path, pg_port: int, db: str):
        super().__init__(tmp)
        self.pg_port, self.db = pg_port, db

    def command(self):
        cmd, env = super().command()
        # ActiveMQ's launcher adds the jars in ${activemq.base}/lib.
        lib = self.tmp / "lib"
        lib.mkdir(exist_ok=True)
        for jar in JARS:
            target = lib / jar.name
            if not target.exists():
                target.symlink_to(jar.resolve())
        (self.tmp / "conf" / "activemq.xml").write_text(JDBC_XML.format(
            host=HOST, pg_port=self.pg_port, db=self.db, dir=self.tmp, port=self.port))
        return cmd, env


def bench(hawser: str, broker, sc, seconds: float, destination: str) -> dict:
    cmd = [hawser, "bench", "--broker", f"tcp://{HOST}:{broker.port}", "--destination", destination,
           *sc.flags(seconds), *broker.bench_flags(), "--scenario", sc.id]
    return compare.run_bench_command(cmd, seconds, broker.pids())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hawser", default="target/release/hawser")
    ap.add_argument("--brokers", default="hawser-journal,hawser-pg,activemq-jdbc")
    ap.add_argument("--scenarios", default="S1,S2,S4")
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--warmup", type=float, default=4)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--json")
    a = ap.parse_args()
    a.hawser = str(Path(a.hawser).resolve())
    missing = [str(j) for j in JARS if not j.exists()]
    if "activemq-jdbc" in a.brokers and missing:
        print(f"missing {missing}: apt-get install -y libpostgresql-jdbc-java libcommons-dbcp2-java", file=sys.stderr)
        return 2
    results: dict = {"command": "python3 bench/pg_store.py " + " ".join(shlex.quote(x) for x in sys.argv[1:]),
                     "runs": []}
    server = pg.PgServer({"max_connections": "200", "synchronous_commit": "on"}).start()
    try:
        with tempfile.TemporaryDirectory(prefix="hawser-pgbench-") as t:
            tmp = Path(t)
            n = 0
            for run in range(a.runs):
                for sid in a.scenarios.split(","):
                    sc = compare.SCENARIOS[sid]
                    for kind in a.brokers.split(","):
                        n += 1
                        d = tmp / f"{kind}-{n}"
                        d.mkdir()
                        db = f"bench_{n}"
                        server.create_database(db)
                        if kind == "hawser-journal":
                            b = compare.Hawser(d, a.hawser)
                        elif kind == "hawser-pg":
                            b = HawserPg(d, a.hawser, server.url(db))
                        else:
                            b = ActiveMQJdbc(d, server.port, db)
                        try:
                            b.start()
                            time.sleep(1)
                            dest = f"/queue/pg.{sid}.{kind}"
                            bench(a.hawser, b, sc, a.warmup, dest + ".warm")
                            r = bench(a.hawser, b, sc, a.seconds, dest)
                        finally:
                            b.stop()
                        # The store was the database: its tables were written.
                        if kind != "hawser-journal":
                            query = {"hawser-pg": "SELECT batch FROM hawser_lease",
                                     "activemq-jdbc": "SELECT count(*) FROM activemq_acks"}[kind]
                            r["database_check"] = f"{query}: {server.sql(db, query)}"
                        r.update(broker=kind, scenario=sid, run=run + 1)
                        results["runs"].append(r)
                        print(json.dumps(r), flush=True)
    finally:
        server.remove()
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
