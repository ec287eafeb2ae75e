"""100 concurrent API clients on the conversation list (GET /api/v1/conversations/, first
page, bearer token) for 60 s: today's single daphne (no pool, CONN_MAX_AGE=0) against the
scaled web tier (nginx + uvicorn web processes with a pooled PostgreSQL) in the same run
(`--quick`: 6 s each on 2,000 conversations instead of 60 s on 20,000).

Two single daphnes are measured, one after the other, each on a database of its own filled the
same way: the issue-day one (the code of main just before issue #21's first merge, taken from
git at BASELINE_REV; the "today's single daphne" the issue measured at ~36 requests/s and
~17 ms CPU per request) and one serving this checkout's code. The first ratio is the issue's
figure (scale-out and the list's CPU cut together); the second isolates the scale-out.

    .venv/bin/python bench/api_load.py [--quick] [--seconds S] [--clients C] [--web W]
                                       [--baseline-rev REV | --baseline-rev none]

Figures: baseline_rev; issue_day_single_* (rps, p50_ms, p95_ms, errors, pg_connections,
cpu_ms_per_request), single_*, cluster_*; ratio_rps_vs_issue_day_single (goal >= 4) and
ratio_rps_vs_single (the same code on one daphne). cpu_ms_per_request is the server
processes' CPU time / requests answered.
"""

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import _common as common
import _load
from cluster import Cluster
from inbox_api import fill, make_company

DB_NAME = "switchboard_bench_apiload"
BASELINE_DB_NAME = "switchboard_bench_apiload_issue_day"
# main just before issue #21's first merge (the parent of b3e0646, "Merge branch 'scale-web'").
BASELINE_REV = "f399515"
SEED_IN_CHILD = "import sys, api_load; print(api_load.seed(sys.argv[1], int(sys.argv[2]))[1])"
REDIS_DB = 7
CHANNEL = "switchboard:events:bench:apiload"
URL = "/api/v1/conversations/"


class ConnectionSampler(threading.Thread):
    """The most PostgreSQL backends connected to the bench database at once."""

    def __init__(self, db_name):
        super().__init__(daemon=True)
        self.db_name, self.peak, self.stopped = db_name, 0, threading.Event()

    def run(self):
        import psycopg

        with psycopg.connect(f"{common.PG_BASE_URL}/postgres", autocommit=True) as conn:
            while not self.stopped.is_set():
                (count,) = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [self.db_name]
                ).fetchone()
                self.peak = max(self.peak, count)
                time.sleep(0.2)

    def stop(self) -> int:
        self.stopped.set()
        self.join(5)
        return self.peak


def load(port, token, clients, seconds, pids, db_name=DB_NAME) -> dict:
    request = _load.request_bytes("GET", URL, {"Authorization": f"Bearer {token}"})

    def forever():
        while True:
            yield request

    _load.run_sync(port, (request for _ in range(clients)), clients)  # warm-up: one each
    sampler = ConnectionSampler(db_name)
    sampler.start()
    cpu_before = common.cpu_seconds(*pids(), children=True)
    result = _load.run_sync(port, forever(), clients, duration=seconds)
    cpu = common.cpu_seconds(*pids(), children=True) - cpu_before
    lat = sorted(result["latencies"])
    return {
        "rps": result["ok"] / result["elapsed"],
        "p50_ms": common.percentile(lat, 50) * 1000,
        "p95_ms": common.percentile(lat, 95) * 1000,
        "errors": sum(result["errors"].values()),
        "pg_connections": sampler.stop(),
        "cpu_ms_per_request": cpu * 1000 / max(1, result["ok"]),
    }


def seed(db_name: str, conversations: int) -> tuple[dict, str]:
    """Migrate `db_name` with the code this process imports and fill it with the bench company;
    returns the environment for its servers and its agent's API token. The issue-day run calls
    it in a child process (SEED_IN_CHILD) whose `_common`, `inbox_api` and Django project come
    from that commit (the same names there)."""
    env = common.setup_django(db_name, REDIS_DB, CHANNEL)
    common.flush_redis(env["REDIS_URL"])
    from django.db import connection

    from accounts.models import ApiToken

    common.truncate_tenants()
    company, users, sources = make_company("bench-load", agents=5)
    common.note(f"filling {conversations} conversations on {db_name}")
    fill(company, users, sources, conversations, 5)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    _, token = ApiToken.issue(users[0], "bench")
    return env, token


def issue_day_single(rev: str, conversations: int, clients: int, seconds: float) -> dict | None:
    """The single daphne on the code of `rev` (git archive into a temporary directory; the
    virtualenv is this one), on its own database; None when this clone lacks the commit."""
    archive = subprocess.run(["git", "-C", str(common.ROOT), "archive", rev], capture_output=True)
    if archive.returncode:
        common.note(f"no issue-day baseline: {archive.stderr.decode().strip()}")
        return None
    with tempfile.TemporaryDirectory(prefix="switchboard-issue-day-") as tmp:
        root = Path(tmp)
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        bench_path = f"{root / 'bench'}{os.pathsep}{common.ROOT / 'bench'}"
        seeded = subprocess.run(
            [sys.executable, "-c", SEED_IN_CHILD, BASELINE_DB_NAME, str(conversations)],
            cwd=root, env={**os.environ, "PYTHONPATH": bench_path}, capture_output=True, text=True,
        )  # fmt: skip
        if seeded.returncode:
            common.note(f"no issue-day baseline: its seeding failed: {seeded.stderr[-2000:]}")
            return None
        token = seeded.stdout.split()[-1]
        env = {**os.environ, **common.bench_env(BASELINE_DB_NAME, REDIS_DB, CHANNEL)}
        port = common.free_port()
        log_path = common.ROOT / "var" / "bench-daphne-issue-day.log"
        daphne = common.start_daphne(env, port, log_path, root=root)
        try:
            return load(port, token, clients, seconds, lambda: [daphne.pid], BASELINE_DB_NAME)
        finally:
            common.stop(daphne)


def main():
    args = common.parse_args(
        __doc__.splitlines()[0],
        seconds={"type": float, "default": None},
        clients={"type": int, "default": 100},
        web={"type": int, "default": 2},
        baseline_rev={"default": BASELINE_REV, "help": "issue-day commit, or 'none'"},
    )
    seconds = args.seconds or (6.0 if args.quick else 60.0)
    conversations = 2000 if args.quick else 20000
    issue_day = None
    if args.baseline_rev != "none":
        issue_day = issue_day_single(args.baseline_rev, conversations, args.clients, seconds)
    env, token = seed(DB_NAME, conversations)

    port = common.free_port()
    daphne = common.start_daphne(env, port)
    try:
        single = load(port, token, args.clients, seconds, lambda: [daphne.pid])
    finally:
        common.stop(daphne)

    pooled = {**env, "DB_POOL_MAX_SIZE": "8", "DB_POOL_MIN_SIZE": "2"}
    with Cluster(pooled, web=args.web, ws=0) as cluster:
        scaled = load(cluster.port, token, args.clients, seconds, lambda: cluster.pids("web"))

    common.emit("clients", args.clients)
    common.emit("seconds", seconds)
    common.emit("web_processes", args.web)
    common.emit("baseline_rev", args.baseline_rev if issue_day else "none")
    runs = (("issue_day_single", issue_day), ("single", single), ("cluster", scaled))
    for prefix, figures in runs:
        for name, value in (figures or {}).items():
            common.emit(f"{prefix}_{name}", value)
    if issue_day:
        common.emit("ratio_rps_vs_issue_day_single", scaled["rps"] / max(issue_day["rps"], 0.001))
    common.emit("ratio_rps_vs_single", scaled["rps"] / max(single["rps"], 0.001))


if __name__ == "__main__":
    main()
