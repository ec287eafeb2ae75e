"""Shared plumbing for the benchmark scripts in bench/.

Each script uses a PostgreSQL database, a Redis database and a realtime channel of its own
(never the development or test ones), creates and migrates the database when it is missing,
and prints every figure on its own line as `name: value`.
"""

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres")
PG_BASE_URL = PG_ADMIN_URL.rsplit("/", 1)[0]

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def parse_args(description: str, **extra) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small data, under a minute")
    for name, kwargs in extra.items():
        parser.add_argument(f"--{name.replace('_', '-')}", **kwargs)
    return parser.parse_args()


def emit(name: str, value) -> None:
    if isinstance(value, float):
        value = f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    print(f"{name}: {value}", flush=True)


def note(text: str) -> None:
    """Progress and context go to stderr so stdout holds only figures."""
    print(f"# {text}", file=sys.stderr, flush=True)


def percentile(values, q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def bench_env(db_name: str, redis_db: int, channel: str) -> dict:
    """Environment for this process and for the servers it starts: production-like settings
    (DEBUG off, so no query log) on the bench's own database, Redis database and channel."""
    return {
        "DJANGO_SETTINGS_MODULE": "crm.settings",
        "DATABASE_URL": f"{PG_BASE_URL}/{db_name}",
        "REDIS_URL": f"redis://127.0.0.1:6379/{redis_db}",
        "REALTIME_CHANNEL": channel,
        # The benches run their servers (Dovecot, SMTP, fakes) on loopback.
        "OUTBOUND_ALLOW_PRIVATE": "true",
        "DEBUG": "false",
        "SECRET_KEY": "bench-secret-key-not-for-production-0123456789abcdefghijkl",
        "FIELD_ENCRYPTION_KEYS": "bench-field-encryption-key-0123456789",
        "SECURE_SSL_REDIRECT": "false",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        "SECURE_HSTS_SECONDS": "0",
        "ALLOWED_HOSTS": os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost"),
        "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
    }


def ensure_database(db_name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db_name]).fetchone()
        if not exists:
            note(f"creating database {db_name}")
            conn.execute(f'CREATE DATABASE "{db_name}"')


def setup_django(db_name: str, redis_db: int, channel: str) -> dict:
    """Point this process at the bench database/Redis, create + migrate, django.setup().

    Returns the environment to hand to subprocesses (daphne)."""
    env = bench_env(db_name, redis_db, channel)
    os.environ.update(env)
    ensure_database(db_name)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    return {**os.environ, **env}


def truncate_tenants() -> None:
    """Every tenant row hangs off a company: one TRUNCATE ... CASCADE empties them all. The
    webhook inbox is named too: its company column has no constraint to cascade along (and
    TRUNCATE fires no delete trigger), and a restarted company id would adopt its rows."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE accounts_company, webhook_inbox_delivery RESTART IDENTITY CASCADE")


def flush_redis(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listened on 127.0.0.1:{port} within {timeout}s")


def start_daphne(
    env: dict, port: int, log_path: Path | None = None, root: Path = ROOT
) -> subprocess.Popen:
    """One daphne process on loopback serving the code under `root` (this checkout unless a
    bench compares with an earlier commit); its output goes to var/bench-daphne.log (the last
    server's only), not to stdout."""
    log_path = log_path or ROOT / "var" / "bench-daphne.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "wb")  # noqa: SIM115 (lives as long as the process)
    process = subprocess.Popen(
        [str(VENV_BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "crm.asgi:application"],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    process.log_path = log_path
    try:
        wait_for_port(port, process)
    except BaseException:
        stop(process)
        raise
    return process


def stop(process: subprocess.Popen | None, timeout: float = 10.0) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def raise_nofile(wanted: int = 65536) -> int:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def cpu_seconds(*pids: int, children: bool = False) -> float:
    """User + system CPU seconds of these processes (and, with `children`, of their children
    too: uvicorn's workers), from /proc."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    seen = set()
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            if children:
                with open(f"/proc/{pid}/task/{pid}/children") as listed:
                    todo += [int(child) for child in listed.read().split()]
        except OSError:
            pass
    return total


def postgres_cpu_seconds() -> dict[int, float]:
    """User + system CPU seconds of each PostgreSQL process on this machine (server, backends,
    WAL writer, ...), by pid: subtract two readings pid by pid (a backend started in between
    counts from zero)."""
    readings = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as comm:
                    if comm.read().strip() != "postgres":
                        continue
            except OSError:
                continue
            readings[int(entry)] = cpu_seconds(int(entry))
    return readings
