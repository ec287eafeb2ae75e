"""Make sure PostgreSQL and Redis answer (starting local ones that are stopped), and create the
database if it is missing. Exits non-zero with a clear message when one cannot be reached."""

import shutil
import subprocess
import time
from pathlib import Path

import psycopg
import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from psycopg import sql

START_POSTGRES = "pg_ctlcluster --skip-systemctl-redirect {version} main start"
START_REDIS = 'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no'
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", ""}


def _postgres_conninfo(dbname: str) -> dict:
    db = settings.DATABASES["default"]
    return {
        "host": db.get("HOST") or "127.0.0.1",
        "port": db.get("PORT") or 5432,
        "user": db.get("USER") or "postgres",
        "password": db.get("PASSWORD") or None,
        "dbname": dbname,
        "connect_timeout": 3,
    }


def postgres_up() -> bool:
    try:
        psycopg.connect(**_postgres_conninfo("postgres")).close()
        return True
    except psycopg.Error:
        return False


def redis_up() -> bool:
    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2)
        client.ping()
        client.close()
        return True
    except redis.RedisError:
        return False


def _start(command: str) -> None:
    subprocess.run(command, shell=True, check=False, capture_output=True, timeout=60)  # noqa: S602


def _wait(check, seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return check()


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument(
            "--create-db", action="store_true", help="create the database if missing"
        )

    def handle(self, *args, create_db=False, **options):
        db = settings.DATABASES["default"]
        if not postgres_up():
            versions = (
                sorted(Path("/etc/postgresql").glob("*"))
                if Path("/etc/postgresql").exists()
                else []
            )
            if (db.get("HOST") or "") in LOCAL_HOSTS and versions and shutil.which("pg_ctlcluster"):
                self.stdout.write("PostgreSQL is not answering; starting the local cluster…")
                _start(START_POSTGRES.format(version=versions[-1].name))
            if not _wait(postgres_up):
                raise CommandError(
                    f"PostgreSQL is unreachable at {db.get('HOST')}:{db.get('PORT') or 5432}. "
                    "Start it or set DATABASE_URL."
                )
        redis_host = redis.connection.parse_url(settings.REDIS_URL).get("host", "")
        if not redis_up():
            if redis_host in LOCAL_HOSTS and shutil.which("redis-server"):
                self.stdout.write("Redis is not answering; starting a local redis-server…")
                _start(START_REDIS)
            if not _wait(redis_up):
                raise CommandError(
                    f"Redis is unreachable at {settings.REDIS_URL}. Start it or set REDIS_URL."
                )
        if create_db:
            self._create_database(db["NAME"])
        self.stdout.write(self.style.SUCCESS("PostgreSQL and Redis are up."))

    def _create_database(self, name: str) -> None:
        with psycopg.connect(**_postgres_conninfo("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                self.stdout.write(f"Created database {name}.")
