"""Real servers for the tests: started on a free loopback port with a private directory, and
stopped (only the process each fixture started)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A redis-server of our own. `appendonly=True` makes every acknowledged write durable
    (appendfsync always) so restart tests can hold the engine to "nothing that returned is lost";
    `appendfsync` picks another policy ("everysec"). `extra` adds server arguments (passwords, TLS);
    `ping` are the redis.Redis arguments that can reach the server then, to see it is up."""

    def __init__(self, directory: Path, *, appendonly: bool = False, appendfsync: str = "always",
                 extra: Sequence[str] = (), ping: dict[str, Any] | None = None) -> None:
        self.binary = self.binary_path()
        self.directory = directory
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.extra = list(extra)
        self.ping = ping or {}
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def binary_path() -> str:
        """$CONVEYOR_REDIS_SERVER (another server binary, such as Valkey's), else redis-server."""
        if "CONVEYOR_REDIS_SERVER" in os.environ:
            chosen = os.environ["CONVEYOR_REDIS_SERVER"]
            if not os.access(chosen, os.X_OK):
                raise RuntimeError(f"CONVEYOR_REDIS_SERVER={chosen!r} is not an executable server binary")
            return chosen
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: `make test` installs it (apt-get install "
                               "redis-server, as root)")
        return binary

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        durability = ["--appendonly", "yes", "--appendfsync", self.appendfsync] if self.appendonly else [
            "--appendonly", "no"]
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--save", "", *durability, "--daemonize", "no", "--logfile", str(self.directory / "redis.log"),
             *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2, **self.ping)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop(kill=True)  # a server that never answered is still ours to stop
                    log = (self.directory / "redis.log").read_text() if (self.directory / "redis.log").exists() else ""
                    raise RuntimeError(f"redis-server did not start on port {self.port}: {log[-2000:]}") from None
                time.sleep(0.02)
        client.close()
        return self

    def stop(self, *, kill: bool = False) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def postgres_bindir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parts[-3]))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: `make test` installs it (apt-get install postgresql, as root)")
    return found[-1].parent


class PostgresServer:
    """A PostgreSQL cluster of our own: initdb into a fresh directory, a free loopback port, trust
    authentication for the `conveyor` role. As root, it runs as the `postgres` system user (the
    server refuses to run as root)."""

    def __init__(self) -> None:
        self.bindir = postgres_bindir()
        self.directory = Path(tempfile.mkdtemp(prefix="conveyor-pg-"))
        self.data = self.directory / "data"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._user = "postgres" if os.geteuid() == 0 else None
        if self._user:
            shutil.chown(self.directory, self._user, self._user)
        subprocess.run([str(self.bindir / "initdb"), "-D", str(self.data), "-U", "conveyor",
                        "--auth=trust", "--no-sync", "-E", "UTF8"], check=True, capture_output=True, user=self._user)

    @property
    def url(self) -> str:
        return f"postgresql://conveyor@127.0.0.1:{self.port}/postgres"

    def start(self) -> PostgresServer:
        # fsync off: a killed server keeps what it committed in the OS cache; only a machine crash
        # could lose it, which the tests never do. synchronous_commit stays on.
        self.process = subprocess.Popen(
            [str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port),
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.directory}",
             "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=300"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, user=self._user)
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(self.url, connect_timeout=1).close()
                return self
            except psycopg.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop(kill=True)  # a server that never answered is still ours to stop
                    stderr = self.process.stderr.read().decode() if self.process.stderr else ""
                    raise RuntimeError(f"PostgreSQL did not start on port {self.port}: {stderr[-2000:]}") from None
                time.sleep(0.05)

    def stop(self, *, kill: bool = False) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        # SIGINT is PostgreSQL's fast shutdown; SIGKILL of the postmaster leaves its backends behind,
        # so a "crash" is SIGQUIT (immediate shutdown: no checkpoint, recovery on the next start).
        self.process.send_signal(signal.SIGQUIT if kill else signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
