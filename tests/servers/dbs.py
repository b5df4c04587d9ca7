"""PostgreSQL 15, MariaDB 10.11 and Redis 7 on loopback, each from a temp data dir.

PostgreSQL and MariaDB refuse to run as root, so when the tests run as root they run as
the `postgres` and `mysql` users, from directories those users own (pytest's own temp
dirs are private to root, hence a world-traversable parent of our own).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from .base import LOOPBACK, Process, free_port, port_open, require_binary, wait_until

PG_BIN = (sorted(glob.glob("/usr/lib/postgresql/*/bin")) or [""])[-1]


def _shared_dir(prefix: str, owner: str | None) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(path, 0o755)
    if owner and os.geteuid() == 0:
        entry = pwd.getpwnam(owner)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


def _run_as(user: str | None, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    if user and os.geteuid() == 0:
        entry = pwd.getpwnam(user)

        def drop() -> None:
            os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)

        kwargs["preexec_fn"] = drop
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, **kwargs)


class Postgres:
    """A PostgreSQL cluster: trust on the unix socket (for set-up), scram-sha-256 on TCP."""

    def __init__(
        self,
        *,
        settings: dict[str, str] | None = None,
        standby: bool = False,
        hba: str = "host all all 127.0.0.1/32 scram-sha-256",
    ) -> None:
        self.initdb = require_binary(os.path.join(PG_BIN, "initdb"), "initdb")
        self.postgres = require_binary(os.path.join(PG_BIN, "postgres"), "postgres")
        self.user = "postgres" if os.geteuid() == 0 else None
        self.dir = _shared_dir("stackscope-pg-", self.user)
        self.data = self.dir / "data"
        self.port = free_port()
        self.settings = {
            "listen_addresses": LOOPBACK,
            "port": str(self.port),
            "unix_socket_directories": str(self.dir),
            "fsync": "off",
            "logging_collector": "off",
            **(settings or {}),
        }
        self.standby = standby
        self.hba = hba
        self.process = Process("postgres", self.dir)

    def start(self) -> Postgres:
        if not self.data.exists():
            done = _run_as(
                self.user,
                [
                    self.initdb,
                    "-D",
                    str(self.data),
                    "-U",
                    "postgres",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ],
            )
            if done.returncode:
                raise RuntimeError(f"initdb failed: {done.stderr}")
            with open(self.data / "pg_hba.conf", "w") as hba:
                hba.write(f"local all all trust\n{self.hba}\n")
            if self.standby:
                (self.data / "standby.signal").write_text("")
            if self.user:
                shutil.chown(self.data / "pg_hba.conf", self.user, self.user)
                if self.standby:
                    shutil.chown(self.data / "standby.signal", self.user, self.user)
        argv = [self.postgres, "-D", str(self.data)]
        for key, value in self.settings.items():
            argv += ["-c", f"{key}={value}"]
        self.process.spawn(argv, user=self.user)
        wait_until(lambda: port_open(self.port), 30, f"postgres on {LOOPBACK}:{self.port}", self.process.died)
        # The port opens while the server is still starting up ("the database system is
        # starting up"): under load a test's first login met that. Ready is accepting sessions.
        if self.settings.get("hot_standby") != "off":  # such a standby never accepts any
            wait_until(
                self._accepts_sessions, 30, f"postgres on {LOOPBACK}:{self.port} accepting sessions", self.process.died
            )
        return self

    def _accepts_sessions(self) -> bool:
        isready = [os.path.join(PG_BIN, "pg_isready"), "-q", "-h", str(self.dir), "-p", str(self.port)]
        return _run_as(self.user, [*isready, "-U", "postgres", "-t", "2"]).returncode == 0

    def psql(self, sql: str, database: str = "postgres") -> str:
        done = _run_as(
            self.user,
            [
                os.path.join(PG_BIN, "psql"),
                "-h",
                str(self.dir),
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-At",
                "-c",
                sql,
            ],
        )
        if done.returncode:
            raise RuntimeError(f"psql failed: {done.stderr}")
        return done.stdout.strip()

    def hold(self, count: int) -> list[subprocess.Popen]:
        """`count` idle sessions (a client waiting on its open stdin); killing the client
        ends the session at once, which a session inside pg_sleep would not."""
        return [
            subprocess.Popen(
                [os.path.join(PG_BIN, "psql"), "-h", str(self.dir), "-p", str(self.port), "-U", "postgres"],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=_dropper(self.user),
            )
            for _ in range(count)
        ]

    def stop(self) -> None:
        self.process.stop()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _dropper(user: str | None):
    if not user or os.geteuid() != 0:
        return None
    entry = pwd.getpwnam(user)

    def drop() -> None:
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)

    return drop


class MariaDB:
    def __init__(self, *, max_connections: int = 20) -> None:
        self.mariadbd = require_binary("mariadbd", "/usr/sbin/mariadbd")
        self.install = require_binary("mariadb-install-db", "/usr/bin/mariadb-install-db")
        self.user = "mysql" if os.geteuid() == 0 else None
        self.dir = _shared_dir("stackscope-maria-", self.user)
        self.data = self.dir / "data"
        self.socket = self.dir / "mysqld.sock"
        self.port = free_port()
        self.max_connections = max_connections
        self.process = Process("mariadb", self.dir)

    def start(self) -> MariaDB:
        if not self.data.exists():
            argv = [
                self.install,
                "--no-defaults",
                f"--datadir={self.data}",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
            ]
            if self.user:
                argv.append(f"--user={self.user}")
            done = subprocess.run(argv, capture_output=True, text=True, timeout=180)
            if done.returncode:
                raise RuntimeError(f"mariadb-install-db failed: {done.stdout}{done.stderr}")
        argv = [
            self.mariadbd,
            "--no-defaults",
            f"--datadir={self.data}",
            f"--socket={self.socket}",
            f"--port={self.port}",
            f"--bind-address={LOOPBACK}",
            f"--pid-file={self.dir}/mariadb.pid",
            f"--max-connections={self.max_connections}",
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=16M",
            "--log-error=" + str(self.dir / "error.log"),
        ]
        if self.user:
            argv.append(f"--user={self.user}")
        self.process.spawn(argv)
        wait_until(lambda: port_open(self.port), 60, f"mariadb on {LOOPBACK}:{self.port}", self.process.died)
        return self

    def sql(self, statement: str) -> str:
        done = subprocess.run(
            ["mariadb", "--no-defaults", "-S", str(self.socket), "-u", "root", "-N", "-e", statement],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if done.returncode:
            raise RuntimeError(f"mariadb failed: {done.stderr}")
        return done.stdout.strip()

    def hold(self, count: int) -> list[subprocess.Popen]:
        """`count` idle sessions that end when their client is killed."""
        return [
            subprocess.Popen(
                ["mariadb", "--no-defaults", "-S", str(self.socket), "-u", "root"],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(count)
        ]

    def stop(self) -> None:
        self.process.stop()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Redis:
    def __init__(self, *args: str) -> None:
        self.binary = require_binary("redis-server", "/usr/bin/redis-server")
        self.dir = Path(tempfile.mkdtemp(prefix="stackscope-redis-"))
        self.port = free_port()
        self.args = list(args)
        self.process = Process("redis", self.dir)

    def start(self) -> Redis:
        self.process.spawn(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                LOOPBACK,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
                "--protected-mode",
                "no",
                *self.args,
            ]
        )
        wait_until(lambda: port_open(self.port), 10, f"redis on {LOOPBACK}:{self.port}", self.process.died)
        return self

    def command(self, *words: str, password: str | None = None) -> bytes:
        """One command over a fresh connection (test set-up only)."""
        with socket.create_connection((LOOPBACK, self.port), timeout=5) as sock:
            if password:
                sock.sendall(_resp("AUTH", password))
                sock.recv(1024)
            sock.sendall(_resp(*words))
            return sock.recv(65536)

    def stop(self) -> None:
        self.process.stop()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _resp(*words: str) -> bytes:
    out = f"*{len(words)}\r\n".encode()
    for word in words:
        data = word.encode()
        out += b"$" + str(len(data)).encode() + b"\r\n" + data + b"\r\n"
    return out
