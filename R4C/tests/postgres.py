"""PostgreSQL servers of a test's own, for what the machine's one server cannot show: a primary
that dies and its synchronous standby promoted, a server that vanishes from the network.

Each is a cluster made with initdb (or pg_basebackup from another) in a folder of its own,
listening on an address and port the test gives; as root, its programs run as the postgres
user, as PostgreSQL requires. Every server started is stopped by `close()`.
"""

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg

BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)), None)


def missing() -> str | None:
    """Why servers of a test's own cannot be made here, or None."""
    if BIN is None or not (BIN / "initdb").exists():
        return "PostgreSQL's server programs (Debian's postgresql) are not installed"
    if os.geteuid() == 0 and not _user():
        return "there is no postgres user to run PostgreSQL's servers as"
    return None


def _user():
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        return None


class Server:
    def __init__(self, host: str, port: int, namespace: str | None = None):
        self.host, self.port = host, port
        self.namespace = namespace  # a network namespace to run in (ip netns)
        self.folder = Path(tempfile.mkdtemp(prefix="r4c-pg-"))
        self.data = self.folder / "data"
        self.running = False
        if os.geteuid() == 0:
            user = _user()
            os.chown(self.folder, user.pw_uid, user.pw_gid)

    def run(self, program: str, *args: str) -> str:
        command = [str(BIN / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        if self.namespace:
            command = ["ip", "netns", "exec", self.namespace, *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode:
            raise RuntimeError(f"{program} failed: {done.stdout}{done.stderr}")
        return done.stdout

    def init(self) -> None:
        """A new primary."""
        self.run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        with (self.data / "pg_hba.conf").open("a") as hba:
            # Any address the test's servers and services use: loopback's, or a namespace's.
            hba.write("host all all 0.0.0.0/0 trust\nhost replication all 0.0.0.0/0 trust\n")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("fsync = off\nmax_connections = 200\n")

    def standby_of(self, primary: "Server") -> None:
        """A streaming standby of `primary`, as `pg_basebackup -R` makes one."""
        self.run(
            "pg_basebackup",
            *("-h", primary.host, "-p", str(primary.port), "-U", "postgres"),
            *("-D", str(self.data), "-R", "-X", "stream", "--no-sync"),
            "--checkpoint=fast",  # not a spread one, which may take minutes
        )

    def start(self, *settings: str) -> None:
        """Start it; `settings` are `name=value` for this start only."""
        options = [
            f"-c listen_addresses={self.host}",
            f"-c port={self.port}",
            f"-c unix_socket_directories={self.folder}",
            *(f"-c {setting}" for setting in settings),
        ]
        self.run(
            "pg_ctl",
            *("-D", str(self.data), "-l", str(self.folder / "log"), "-w", "-t", "60"),
            *("-o", " ".join(options), "start"),
        )
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """`immediate`: as a crash, no shutdown checkpoint, every client cut off."""
        self.run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")
        self.running = False

    def wait_for_every_commit_on_a_standby(self) -> None:
        """From now on a commit waits until a standby has it (synchronous replication)."""
        self.sql("ALTER SYSTEM SET synchronous_standby_names = '*'")
        self.sql("SELECT pg_reload_conf()")

    def promote(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-w", "promote")

    def sql(self, query: str, *params) -> list[tuple]:
        with psycopg.connect(
            host=self.host, port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            cursor = conn.execute(query, params or None)
            return cursor.fetchall() if cursor.description else []

    def close(self) -> None:
        if self.running:
            try:
                self.stop("immediate")
            except RuntimeError:
                pass
        shutil.rmtree(self.folder, ignore_errors=True)
