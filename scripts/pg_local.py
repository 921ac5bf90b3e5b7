"""A throwaway PostgreSQL server for tests and benchmarks.

``initdb`` in a temporary folder, then ``postgres`` as a child process listening on 127.0.0.1
(and a Unix socket in that folder) only. PostgreSQL refuses to run as root: under root (as in
CI) both run as an unprivileged user (``nobody``). Password logins over TCP (scram-sha-256), so
a test can use a wrong password or a read-only role.

    python scripts/pg_local.py          # start one, print its URL, stop on Ctrl-C
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SUPERUSER = "postgres"
USER = "nearline"
DATABASE = "nearline"
INSTALL_HINT = (
    "PostgreSQL is not installed (initdb not found on PATH or under /usr/lib/postgresql); "
    "install it (Debian/Ubuntu: apt install postgresql) or see the README's team section"
)


def binaries() -> Path | None:
    """The folder holding ``initdb`` and ``postgres``, or None."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(versions[-1]).parent if versions else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalPostgres:
    """One server in its own temporary folder; ``start``, ``stop`` (and start again)."""

    def __init__(self, folder: Path | None = None, port: int | None = None) -> None:
        self.bin = binaries()
        if self.bin is None:
            raise RuntimeError(INSTALL_HINT)
        self.folder = Path(folder or tempfile.mkdtemp(prefix="nearline-pg-"))
        self.data = self.folder / "data"
        self.port = port or _free_port()
        self.password = secrets.token_hex(12)
        self.superpass = secrets.token_hex(12)
        self.proc: subprocess.Popen[bytes] | None = None
        self._as: dict[str, object] = {}
        if os.geteuid() == 0:  # PostgreSQL refuses root: run it as nobody
            self._as = {"user": 65534, "group": 65534, "extra_groups": []}

    # -- URLs ----------------------------------------------------------------------------------
    def url(self, user: str = USER, password: str | None = None, database: str = DATABASE) -> str:
        secret = self.password if password is None and user == USER else password
        secret = self.superpass if secret is None and user == SUPERUSER else secret
        auth = f"{user}:{secret}" if secret else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    @property
    def admin_url(self) -> str:
        return self.url(SUPERUSER, self.superpass, "postgres")

    # -- running -------------------------------------------------------------------------------
    def _run(self, *args: str) -> None:
        subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            **self._as,  # type: ignore[arg-type]
        )

    def init(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        pwfile = self.folder / "pw"
        pwfile.write_text(self.superpass + "\n")
        if self._as:
            for path in (self.folder, pwfile):
                os.chown(path, 65534, 65534)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--no-sync",
        )
        pwfile.unlink()

    def start(self, timeout: float = 30.0) -> LocalPostgres:
        if not self.data.exists():
            self.init()
            first = True
        else:
            first = False
        log = (self.folder / "postgres.log").open("ab")
        self.proc = subprocess.Popen(
            [
                str(self.bin / "postgres"),
                "-D",
                str(self.data),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-k",
                str(self.folder),
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
            ],
            stdout=log,
            stderr=log,
            start_new_session=True,
            **self._as,  # type: ignore[arg-type]
        )
        log.close()
        self._wait_ready(timeout)
        if first:
            self._create_user()
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited; see {self.folder / 'postgres.log'}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
                import psycopg

                with psycopg.connect(self.admin_url, connect_timeout=2):
                    return
            except Exception:
                time.sleep(0.1)
        raise RuntimeError(f"postgres did not start in {timeout:.0f} s")

    def _create_user(self) -> None:
        self.sql(f"CREATE ROLE {USER} LOGIN PASSWORD '{self.password}'")
        self.sql(f"CREATE DATABASE {DATABASE} OWNER {USER}")

    def sql(self, statement: str, database: str = "postgres") -> list[tuple[object, ...]]:
        """Run ``statement`` as the superuser; the rows it returns."""
        import psycopg

        with psycopg.connect(self.url(SUPERUSER, self.superpass, database), autocommit=True) as c:
            cur = c.execute(statement)  # type: ignore[arg-type]
            return list(cur.fetchall()) if cur.description else []

    def stop(self) -> None:
        """Fast shutdown (SIGINT): open connections are cut, as when a server goes away."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.destroy()


def main() -> int:
    with LocalPostgres() as pg:
        print(pg.url(), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


if __name__ == "__main__":
    sys.exit(main())
