"""docs/production.md's one-host guide, as a new operator follows it: every command block in
order, as written, on a fresh copy of the project, `.env` filled in as its step 2 says, on
the suite's kind of database (PostgreSQL: the guide's own lines make the role and the
database). It ends with a robot posted with a key, its mail at a local SMTP server, /metrics
read, a backup and a restore.

What is replaced, and only that: the clone's address (the copy stands for it), the port, the
role's and the databases' names (lest they meet a real `r4c`), the mail server (a local one,
no TLS, no login), and `sudo -u postgres` (this machine's PostgreSQL trusts its user
`postgres` on 127.0.0.1)."""

import os
import re
import secrets
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from django.db import connection

from orders.tests.smtp import free_port, smtp_server
from R4C.tests.world import text_of, wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "production.md"
NAMES = {line.split("=", 1)[0] for line in (ROOT / ".env.example").read_text().splitlines()}


def blocks() -> list[tuple[str, str]]:
    """The one-host section's code blocks, in order: (language, text)."""
    section = GUIDE.read_text().split("`make serve` creates the virtual environment")[0]
    return re.findall(r"```(\w+)\n(.*?)```", section, re.DOTALL)


def fresh_copy(to: Path) -> None:
    """What `git clone` gives, from this work tree, and the suite's virtual environment (its
    files keep their times, so make sees the environment up to date)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (to / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, to / name)
    (to / ".venv").symlink_to(ROOT / ".venv")


def test_the_one_host_guide_works_as_written_from_clone_to_restore(tmp_path):
    postgresql = connection.vendor == "postgresql"
    copy, port, name = tmp_path / "r4c", free_port(), f"guide_{secrets.token_hex(4)}"
    copy.mkdir()
    fresh_copy(copy)
    db = connection.settings_dict
    # The operator's own shell: none of the suite's variables, nothing R4C reads.
    shell = {k: v for k, v in os.environ.items() if k not in NAMES and "DJANGO" not in k}
    shell["PGPASSWORD"] = ""
    prelude = (
        f"sudo() {{ shift 2; PGHOST={db['HOST'] or '127.0.0.1'} PGPORT={db['PORT'] or 5432} "
        'PGUSER=postgres "$@"; }\n'
    )

    def written(text: str) -> str:
        text = text.replace("git clone https://git.factory.ru/r4c.git /srv/r4c && ", "")
        text = text.replace("cd /srv/r4c", f"cd {copy}").replace(
            "127.0.0.1:8000", f"127.0.0.1:{port}"
        )
        text = re.sub(r"\bROLE r4c\b", f"ROLE {name}", text)
        text = text.replace("--owner=r4c r4c", f"--owner={name} {name}")
        text = text.replace("postgres://r4c:", f"postgres://{name}:")
        text = text.replace("@127.0.0.1:5432/r4c", f"@{db['HOST']}:{db['PORT'] or 5432}/{name}")
        # Each kind of database runs its own lines, and skips the other's.
        skip = ("sudo -u postgres", "postgres://") if not postgresql else ("sqlite:///",)
        return "\n".join(line for line in text.splitlines() if not any(s in line for s in skip))

    def run(text: str) -> str:
        done = subprocess.run(
            ["bash", "-ec", prelude + written(text)], cwd=copy, env=shell,
            capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"{written(text)}\n{done.stdout}\n{done.stderr}"
        return done.stdout.replace("\r\n", "\n")

    def settle(text: str, mail_port: int) -> None:
        """Step 2: each line of the block set in `.env`, the operator's values for the rest."""
        ours = {
            "SECRET_KEY": secrets.token_urlsafe(50),
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(mail_port),
            "EMAIL_USE_TLS": "false",
            "HOST_USER": "",
            "HOST_PASSWORD": "",
        }
        env = copy / ".env"
        lines = env.read_text().splitlines()
        for line in written(text).splitlines():
            if line.startswith("#"):
                continue
            key, value = line.split("=", 1)
            value = ours.get(key, value)
            lines = [f"{key}={value}" if kept.startswith(f"{key}=") else kept for kept in lines]
        env.write_text("\n".join(lines) + "\n")

    [clone, settings, serve, first, backup] = blocks()
    assert [kind for kind, _ in blocks()] == ["sh", "ini", "sh", "sh", "sh"]
    assert clone[1].startswith("git clone ") and serve[1].startswith("make serve")
    try:
        run(clone[1])
        with smtp_server() as mailbox:
            settle(settings[1], mailbox.port)
            server = subprocess.Popen(
                ["bash", "-ec", written(serve[1]).replace("make serve", f"make serve PORT={port}")],
                cwd=copy, env=shell, stdout=(tmp_path / "serve.log").open("w"),
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
            try:
                up = wait_for(lambda: _healthz(port), 120)
                assert up, (tmp_path / "serve.log").read_text()
                said = run(first[1])
                assert "HTTP/1.1 201 Created" in said, said
                assert "r4c_notices" in said, said
                assert wait_for(lambda: mailbox.recipients() == ["you@factory.ru"], 15)
                text = text_of(mailbox.messages[0][1])
                assert f"http://127.0.0.1:{port}/stop/" in text, text
                assert "+7 495 000-00-00, sales@factory.ru" in text, text
            finally:
                os.killpg(server.pid, signal.SIGTERM)
                server.wait(60)
        run(backup[1])
        restored = (
            f"postgres://{name}:x@{db['HOST']}:{db['PORT'] or 5432}/{name}_restored"
            if postgresql
            else f"sqlite:///{copy / 'restored.sqlite3'}"
        )
        robots = subprocess.run(
            [".venv/bin/python", "manage.py", "shell", "-c",
             "from robots.models import Robot; print(Robot.objects.get().serial)"],
            cwd=copy, env=shell | {"DATABASE_URL": restored}, capture_output=True, text=True,
            check=False,
        )  # fmt: skip
        assert robots.stdout.strip().splitlines()[-1:] == ["R2-D2"], robots.stderr
    finally:
        if postgresql:
            for statement in (
                f"DROP DATABASE IF EXISTS {name} WITH (FORCE)",
                f"DROP DATABASE IF EXISTS {name}_restored WITH (FORCE)",
                f"DROP ROLE IF EXISTS {name}",
            ):
                subprocess.run(
                    ["psql", "-h", db["HOST"], "-p", str(db["PORT"] or 5432), "-U", "postgres",
                     "-d", "postgres", "-c", statement],
                    env=shell, capture_output=True, check=False,
                )  # fmt: skip


def _healthz(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False
