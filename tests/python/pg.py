"""A real PostgreSQL 15 server for Hawser's store tests: a fresh cluster in
a temporary directory (initdb), on a loopback port, stopped by its PID. As
root (CI), the server runs as the ``postgres`` user: PostgreSQL refuses to
run as root. ``setpriv`` execs the server itself, so its PID is the
postmaster's."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from conftest import HOST, free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
START_TIMEOUT = 30.0


def available() -> bool:
    return (PG_BIN / "postgres").exists()


def _as_postgres(program: str, *args: str) -> list[str]:
    cmd = [str(PG_BIN / program), *args]
    if os.geteuid() == 0:
        return ["setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups", "--", *cmd]
    return cmd


class PgServer:
    """A cluster in a directory of its own under /tmp (the postgres user must
    reach it; pytest's directories are private to root), removed by ``stop``."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="hawser-pg-"))
        self.data = self.dir / "pgdata"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        out = subprocess.run(_as_postgres("initdb", "-A", "trust", "-U", "hawser", "--no-sync", "-D", str(self.data)),
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr

    def start(self) -> "PgServer":
        log = open(self.dir / "server.log", "ab")
        self.proc = subprocess.Popen(
            _as_postgres("postgres", "-D", str(self.data), "-p", str(self.port), "-h", HOST, "-k", str(self.dir),
                         "-c", "fsync=on", "-c", "max_connections=100"),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            ready = subprocess.run([str(PG_BIN / "pg_isready"), "-h", HOST, "-p", str(self.port)],
                                   capture_output=True, timeout=10).returncode == 0
            if ready:
                return self
            assert self.proc.poll() is None, (self.dir / "server.log").read_text()
            assert time.monotonic() < deadline, "postgres did not start"
            time.sleep(0.05)

    def url(self, dbname: str = "postgres") -> str:
        return f"host={HOST} port={self.port} user=hawser dbname={dbname} connect_timeout=5"

    def create_database(self, name: str) -> str:
        out = subprocess.run(["psql", "-h", HOST, "-p", str(self.port), "-U", "hawser", "-d", "postgres",
                              "-c", f"CREATE DATABASE {name}"], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return self.url(name)

    def sql(self, dbname: str, query: str) -> str:
        out = subprocess.run(["psql", "-h", HOST, "-p", str(self.port), "-U", "hawser", "-d", dbname,
                              "-At", "-c", query], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def remove(self) -> None:
        """Stops the server and deletes its cluster."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
