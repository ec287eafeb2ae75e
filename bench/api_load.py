"""100 concurrent API clients on the conversation list (GET /api/v1/conversations/, first
page, bearer token) for 60 s: today's single daphne (no pool, CONN_MAX_AGE=0) against the
scaled web tier (nginx + uvicorn web processes with a pooled PostgreSQL) in the same run.

    .venv/bin/python bench/api_load.py [--quick] [--seconds S] [--clients C] [--web W]

Figures: single_rps, single_p95_ms, single_errors, single_pg_connections, cluster_rps,
cluster_p95_ms, cluster_errors, cluster_pg_connections, ratio_rps_vs_single (goal >= 4),
and cpu_ms_per_request for each (server processes' CPU time / requests answered).
"""

import threading
import time

import _common as common
import _load
from cluster import Cluster
from inbox_api import fill, make_company

DB_NAME = "switchboard_bench_apiload"
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


def load(port, token, clients, seconds, pids) -> dict:
    request = _load.request_bytes("GET", URL, {"Authorization": f"Bearer {token}"})

    def forever():
        while True:
            yield request

    _load.run_sync(port, (request for _ in range(clients * 3)), clients)  # warm-up
    sampler = ConnectionSampler(DB_NAME)
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


def main():
    args = common.parse_args(
        __doc__.splitlines()[0],
        seconds={"type": float, "default": None},
        clients={"type": int, "default": 100},
        web={"type": int, "default": 2},
    )
    seconds = args.seconds or (15.0 if args.quick else 60.0)
    env = common.setup_django(DB_NAME, REDIS_DB, CHANNEL)
    common.flush_redis(env["REDIS_URL"])
    from accounts.models import ApiToken

    common.truncate_tenants()
    company, users, sources = make_company("bench-load", agents=5)
    conversations = 2000 if args.quick else 20000
    common.note(f"filling {conversations} conversations")
    fill(company, users, sources, conversations, 5)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    _, token = ApiToken.issue(users[0], "bench")

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
    for prefix, figures in (("single", single), ("cluster", scaled)):
        for name, value in figures.items():
            common.emit(f"{prefix}_{name}", value)
    common.emit("ratio_rps_vs_single", scaled["rps"] / max(single["rps"], 0.001))


if __name__ == "__main__":
    main()
