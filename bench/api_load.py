"""100 concurrent API clients on the conversation list (GET /api/v1/conversations/, first
page, bearer token) for 60 s: today's single daphne (no pool, CONN_MAX_AGE=0) against the
scaled web tier (nginx + uvicorn web processes with a pooled PostgreSQL) in the same run
(`--quick`: 6 s each on 2,000 conversations instead of 60 s on 20,000).

Two single daphnes are measured, each on a database of its own filled the same way: the
issue-day one (the code of main just before issue #21's first merge, taken from git at
BASELINE_REV; the "today's single daphne" the issue measured at ~36 requests/s and ~17 ms CPU
per request) and one serving this checkout's code. The first ratio is the issue's figure
(scale-out and the list's CPU cut together); the second isolates the scale-out.

This machine's speed drifts by a fifth within minutes, so the three configurations take turns:
`--rounds R` rounds (default 3; 1 with `--quick`) of seconds/R each, every server started
afresh for its turn. A ratio is the median of the rounds' ratios (each round's, lowest first,
in `*_rounds`); rps, p50, p95 and CPU are the medians of each side's rounds, errors their sum,
pg_connections their peak.

    .venv/bin/python bench/api_load.py [--quick] [--seconds S] [--clients C] [--web W]
                                       [--rounds R] [--baseline-rev REV | --baseline-rev none]

Figures: baseline_rev; issue_day_single_* (rps, p50_ms, p95_ms, errors, pg_connections,
cpu_ms_per_request), single_*, cluster_*; ratio_rps_vs_issue_day_single (goal >= 4) and
ratio_rps_vs_single (the same code on one daphne). cpu_ms_per_request is the server
processes' CPU time / requests answered.
"""

import contextlib
import os
import statistics
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


@contextlib.contextmanager
def issue_day_single(rev: str, conversations: int, clients: int):
    """Yields run(seconds) -> figures: the single daphne on the code of `rev` (git archive into
    a temporary directory; the virtualenv is this one), on its own database, started for each
    run; None when this clone lacks the commit or its seeding fails."""
    archive = subprocess.run(["git", "-C", str(common.ROOT), "archive", rev], capture_output=True)
    if archive.returncode:
        common.note(f"no issue-day baseline: {archive.stderr.decode().strip()}")
        yield None
        return
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
            yield None
            return
        token = seeded.stdout.split()[-1]
        env = {**os.environ, **common.bench_env(BASELINE_DB_NAME, REDIS_DB, CHANNEL)}
        log_path = common.ROOT / "var" / "bench-daphne-issue-day.log"

        yield lambda seconds: single_daphne(
            env, token, clients, seconds, BASELINE_DB_NAME, root=root, log_path=log_path
        )


def single_daphne(env, token, clients, seconds, db_name=DB_NAME, root=common.ROOT, log_path=None):
    """One daphne started for this turn, loaded for `seconds`, stopped."""
    port = common.free_port()
    daphne = common.start_daphne(env, port, log_path, root=root)
    try:
        return load(port, token, clients, seconds, lambda: [daphne.pid], db_name)
    finally:
        common.stop(daphne)


def combined(rounds: list[dict]) -> dict:
    """One side's figures over its rounds: medians, errors summed, the peak of connections."""
    figures = {
        name: statistics.median(r[name] for r in rounds)
        for name in ("rps", "p50_ms", "p95_ms", "cpu_ms_per_request")
    }
    figures["errors"] = sum(r["errors"] for r in rounds)
    figures["pg_connections"] = max(r["pg_connections"] for r in rounds)
    return figures


def ratio(rounds: list[dict], baseline: list[dict]) -> tuple[float, list[float]]:
    ratios = sorted(r["rps"] / max(b["rps"], 0.001) for r, b in zip(rounds, baseline, strict=True))
    return statistics.median(ratios), ratios


def main():
    args = common.parse_args(
        __doc__.splitlines()[0],
        seconds={"type": float, "default": None},
        clients={"type": int, "default": 100},
        web={"type": int, "default": 2},
        rounds={"type": int, "default": None},
        baseline_rev={"default": BASELINE_REV, "help": "issue-day commit, or 'none'"},
    )
    seconds = args.seconds or (6.0 if args.quick else 60.0)
    rounds = args.rounds or (1 if args.quick else 3)
    conversations = 2000 if args.quick else 20000
    sides: dict[str, list[dict]] = {"issue_day_single": [], "single": [], "cluster": []}
    baseline = (
        issue_day_single(args.baseline_rev, conversations, args.clients)
        if args.baseline_rev != "none"
        else contextlib.nullcontext()
    )
    turn = seconds / rounds
    with baseline as issue_day:
        env, token = seed(DB_NAME, conversations)
        pooled = {**env, "DB_POOL_MAX_SIZE": "8", "DB_POOL_MIN_SIZE": "2"}
        for round_n in range(rounds):
            common.note(f"round {round_n + 1} of {rounds}")
            if issue_day:
                sides["issue_day_single"].append(issue_day(turn))
            sides["single"].append(single_daphne(env, token, args.clients, turn))
            with Cluster(pooled, web=args.web, ws=0) as cluster:
                sides["cluster"].append(
                    load(cluster.port, token, args.clients, turn, lambda: cluster.pids("web"))
                )

    common.emit("clients", args.clients)
    common.emit("seconds", seconds)
    common.emit("rounds", rounds)
    common.emit("web_processes", args.web)
    common.emit("baseline_rev", args.baseline_rev if issue_day else "none")
    for prefix, side in sides.items():
        if side:
            for name, value in combined(side).items():
                common.emit(f"{prefix}_{name}", value)
    for name, baseline in (
        ("issue_day_single", sides["issue_day_single"]),
        ("single", sides["single"]),
    ):
        if baseline:
            median, each = ratio(sides["cluster"], baseline)
            common.emit(f"ratio_rps_vs_{name}", median)
            common.emit(f"ratio_rps_vs_{name}_rounds", " ".join(f"{r:.2f}" for r in each))


if __name__ == "__main__":
    main()
