"""A throw-away PostgreSQL server for end-to-end tests: Debian's `postgresql` binaries, a cluster made by initdb in
a temporary directory, listening only on a Unix socket there, run as the `postgres` user when the tests run as root
(PostgreSQL refuses to run as root). The same recipe as Tests/BakeoffTestSupport/ThrowawayPostgres.swift.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time


def binaries() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
    return os.path.dirname(found[-1]) if found else None


class ThrowawayPostgres:
    def __init__(self, durable: bool = False):
        self.bin = binaries()
        if self.bin is None:
            raise RuntimeError("PostgreSQL's server binaries are not installed (Debian's postgresql package: make deps)")
        self.as_postgres = os.getuid() == 0
        # A short path: a Unix socket's path may not be longer than about 107 bytes.
        self.directory = tempfile.mkdtemp(prefix="bkpg-", dir="/tmp")
        if self.as_postgres:
            pw = pwd.getpwnam("postgres")
            os.chown(self.directory, pw.pw_uid, pw.pw_gid)
        os.chmod(self.directory, 0o755)
        self.durable = durable
        self.server: subprocess.Popen | None = None
        self._run("initdb", "-D", f"{self.directory}/data", "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8",
                  "--locale=C.UTF-8")
        self.start()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@/postgres?host={self.directory}"

    def _command(self, tool: str, *args: str) -> list[str]:
        path = f"{self.bin}/{tool}"
        if self.as_postgres:
            return ["setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups", path, *args]
        return [path, *args]

    def _run(self, tool: str, *args: str) -> str:
        r = subprocess.run(self._command(tool, *args), capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"{tool} failed ({r.returncode}): {r.stdout}{r.stderr}")
        return r.stdout

    def start(self):
        self.server = subprocess.Popen(
            self._command("postgres", "-D", f"{self.directory}/data", "-k", self.directory, "-c", "listen_addresses=",
                          "-c", f"fsync={'on' if self.durable else 'off'}", "-c", "max_connections=200"),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if subprocess.run(self._command("pg_isready", "-q", "-h", self.directory)).returncode == 0:
                return
            if self.server.poll() is not None:
                raise RuntimeError(f"the PostgreSQL server in {self.directory} stopped while starting")
            time.sleep(0.05)
        raise RuntimeError(f"the PostgreSQL server in {self.directory} did not start within 30 s")

    def crash(self):
        """Stops the server the way a crash does (SIGQUIT: immediate shutdown, recovery from the WAL at the next start)."""
        if self.server and self.server.poll() is None:
            self.server.send_signal(3)
            self.server.wait(30)
        self.server = None

    def stop(self):
        if self.server and self.server.poll() is None:
            self.server.send_signal(2)  # SIGINT: fast shutdown
            try:
                self.server.wait(30)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait(30)
        self.server = None

    def psql(self, sql: str) -> str:
        """Runs `sql` with psql (unaligned, tuples only) and gives its output."""
        return self._run("psql", "-h", self.directory, "-U", "postgres", "-d", "postgres", "-X", "-q", "-A", "-t",
                         "-v", "ON_ERROR_STOP=1", "-c", sql)

    def close(self):
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
