"""Real processes for tests: a private redis-server, and Celery workers on a private queue
against the test database (tests.settings_worker); and `wait_for`, to wait on what they do."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

BASE_DIR = Path(settings.BASE_DIR)
CELERY = BASE_DIR / ".venv" / "bin" / "celery"
if not CELERY.exists():
    CELERY = Path(sys.executable).with_name("celery")


def wait_for(predicate, timeout=10.0, interval=0.05):
    """Poll `predicate` until it returns something true, and return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(interval)
    raise AssertionError(f"not true within {timeout}s: {predicate}")


def advisory_locks(*, waiting: bool = False, others_only: bool = False) -> int:
    """Advisory locks held (or, `waiting`, waited for) in this test database; `others_only`:
    not by this connection. pg_locks is cluster-wide: another suite or a bench on the same
    PostgreSQL holds locks of its own."""
    sql = (
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    if waiting:
        sql += " AND NOT granted"
    if others_only:
        sql += " AND pid <> pg_backend_pid()"
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchone()[0]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    def __init__(self):
        self.port = free_port()
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self):
        self.process.kill()
        self.process.wait(10)


def database_url() -> str:
    """The test database (inside a test: the one pytest-django created), for other processes."""
    db = connection.settings_dict
    credentials = quote(db.get("USER") or "postgres", safe="")
    if db.get("PASSWORD"):
        credentials += ":" + quote(db["PASSWORD"], safe="")
    host, port = db.get("HOST") or "127.0.0.1", db.get("PORT") or 5432
    return f"postgres://{credentials}@{host}:{port}/{quote(db['NAME'], safe='')}"


class Worker:
    """A Celery worker process serving `queue` only; `env` adds settings (tests.settings_worker
    reads them)."""

    def __init__(self, name, queue, log_dir, *, env=None, pool="solo"):
        self.log_path = log_dir / f"{name}.log"
        full_env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings_worker",
            "DATABASE_URL": database_url(),
            "CELERY_TASK_DEFAULT_QUEUE": queue,
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        command = [
            str(CELERY), "-A", "crm", "worker", f"--pool={pool}", "-Q", queue,
            "--loglevel=INFO", "-n", f"{name}-{queue}@%h", "--without-gossip",
            "--without-mingle", "--without-heartbeat", "--prefetch-multiplier=1",
        ]  # fmt: skip
        if pool == "threads":
            command.append("--concurrency=4")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(  # noqa: S603
                command,
                cwd=BASE_DIR,
                env=full_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"worker exited with {self.process.returncode}:\n{self.log()}")
            if " ready." in self.log():
                return
            time.sleep(0.1)
        pytest.fail(f"worker not ready after {timeout}s:\n{self.log()}")

    def kill(self):
        """SIGKILL: no shutdown handlers, no acknowledgements, nothing recorded."""
        self._signal(signal.SIGKILL)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def terminate(self, timeout=30.0) -> int:
        """SIGTERM, as systemd stops a service; waits for the exit."""
        self._signal(signal.SIGTERM, group=False)
        return self.process.wait(timeout=timeout)

    def _signal(self, sig, group=True):
        if self.process.poll() is None:
            try:
                if group:
                    os.killpg(self.process.pid, sig)
                else:
                    self.process.send_signal(sig)
            except ProcessLookupError:
                pass


def drop_queue(client, queue):
    """Forget a private queue, including what a killed worker left in kombu's `unacked` hash
    (it would be restored an hour later)."""
    client.delete(queue, f"_kombu.binding.{queue}")
    for tag, raw in client.hgetall("unacked").items():
        try:
            _message, _exchange, routing_key = json.loads(raw)
        except (ValueError, TypeError):
            continue
        if routing_key == queue:
            client.hdel("unacked", tag)
            client.zrem("unacked_index", tag)
