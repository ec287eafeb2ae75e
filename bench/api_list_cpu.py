"""CPU per conversation-list request, in process: GET /api/v1/conversations/ (first page of
50, bearer token) through Django's test client (the whole middleware stack, auth, the view,
JSON rendering), no server and no network, so the figure is the application's own CPU.

    .venv/bin/python bench/api_list_cpu.py [--quick] [--requests N] [--profile]

Data: one company with 2,000 conversations (5 messages each on average), bench/inbox_api.fill.
Figures: list_cpu_ms_per_request (process CPU time / requests), list_wall_ms_per_request,
list_queries_per_request. `--profile` prints cProfile's top functions (cumulative) to stderr.
"""

import time

import _common as common
from inbox_api import fill, make_company

DB_NAME = "switchboard_bench_apilist"
REDIS_DB = 12
CHANNEL = "switchboard:events:bench:apilist"
URL = "/api/v1/conversations/"


def main():
    args = common.parse_args(
        __doc__.splitlines()[0],
        requests={"type": int, "default": None},
        profile={"action": "store_true", "help": "cProfile's top functions to stderr"},
    )
    requests = args.requests or (200 if args.quick else 1000)
    env = common.setup_django(DB_NAME, REDIS_DB, CHANNEL)
    common.flush_redis(env["REDIS_URL"])
    from django.db import connection
    from django.test import Client

    from accounts.models import ApiToken

    common.truncate_tenants()
    company, users, sources = make_company("bench-list", agents=5)
    fill(company, users, sources, 2000, 5)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    _, token = ApiToken.issue(users[0], "bench")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_HOST="localhost")

    def get():
        response = client.get(URL)
        if response.status_code != 200:
            raise RuntimeError(f"{response.status_code}: {response.content[:300]!r}")
        return response

    for _ in range(20):  # warm-up: imports, caches, prepared plans
        get()
    queries = []

    def record(execute, sql, params, many, context):
        queries.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        get()
    cpu, wall = time.process_time(), time.perf_counter()
    if args.profile:
        import cProfile
        import pstats
        import sys

        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
    for _ in range(requests):
        get()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if args.profile:
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(45)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(30)
    common.emit("list_requests", requests)
    common.emit("list_cpu_ms_per_request", cpu * 1000 / requests)
    common.emit("list_wall_ms_per_request", wall * 1000 / requests)
    common.emit("list_queries_per_request", len(queries))
    for sql in queries:
        common.note(sql[:400])


if __name__ == "__main__":
    main()
