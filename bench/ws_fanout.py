"""Realtime fan-out: N authenticated WebSocket clients of one company on ONE daphne process,
one `message.created` published per round, delivery latency measured at every client; and
the same for a bare `websockets` broadcast server (no Django) fed by the same Redis channel.

    .venv/bin/python bench/ws_fanout.py [--quick]

N = 100 and 1,000 (--quick: 100 and 300), 20 measured rounds each. Figures per N:
ws_<N>_p50_ms, ws_<N>_p99_ms, ws_<N>_errors, bare_<N>_p50_ms, bare_<N>_p99_ms,
bare_<N>_errors, and ratio_p99_<N>_vs_bare (goal at 1,000: zero errors, ratio <= 3).

Clients run in two small asyncio processes (this machine has two cores), connect in batches
(the connect storm is not measured), and compare the event's `sent_at` (CLOCK_MONOTONIC,
shared by all processes on the machine) with the time each frame arrives.
Typing storm (issue 18): on one daphne, N_STORM clients listening for `message.created`
(100; --quick too) and 200 agents of the same company, each with one of 50 conversations open,
all connected once and kept for both phases (so both fan every event out to the same 300
sockets). The rounds are timed once while nobody types and once while every agent sends a
typing signal every STORM_TYPING_EVERY s (the browser's rate; BENCH_STORM_EVERY=1: three times
that). The process playing the agents runs at nice 19: their browsers are elsewhere, not on the
server's cores. Figures: typing_baseline_p50_ms, typing_storm_p50_ms, typing_baseline_p99_ms,
typing_storm_p99_ms, typing_storm_ratio_p99 (goal <= 1.2), typing_baseline_daphne_cpu and
typing_storm_daphne_cpu (the share of one core daphne used in each phase),
typing_storm_signals_sent, typing_storm_signals_heard, typing_storm_errors (BENCH_STORM_ONLY=1:
only these).

BENCH_PYSPY=/tmp/spy samples daphne with py-spy during the measured rounds
(/tmp/spy.<N>.txt, collapsed stacks).

    .venv/bin/python bench/ws_fanout.py --restart [--quick]

Restarts nobody notices: 1,000 clients (--quick: 300) through nginx on two daphne processes
(bench/cluster.py), each daphne restarted in turn (SIGTERM, then started again): every client
reconnects as static/js/realtime.js does (told 4012, service restart: within 0.2-3 s at random; otherwise
backoff from 1 s with jitter). Figures: restart_clients, restart_back_s (the longest time
from a SIGTERM until every client had its welcome again; goal <= 10), restart_dropped_handshakes
(handshakes that failed; goal 0), restart_lost_clients.
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import _common as common

DB_NAME = "switchboard_bench_ws"
REDIS_DB = 12
CHANNEL = "switchboard:events:bench:ws"
BARE_CHANNEL = "switchboard:events:bench:ws-bare"
WORKERS = 2
ROUNDS = 20
WARMUP_ROUNDS = 2
CONNECT_BATCH = 50
ROUND_TIMEOUT = 10.0
WORKER_DEADLINE = 600.0  # a client process exits by itself after this long, whatever happens
N_STORM = 100
STORM_ROUNDS = 40  # per phase: a p99 of 4,000 deliveries, not of one unlucky round in 20
STORM_AGENTS = 200
STORM_CONVERSATIONS = 50
# Seconds between one agent's typing signals: the browser's rate (static/js/notes.js sends at
# most one per 3 s); BENCH_STORM_EVERY=1 sends three times as often (the server drops the excess).
STORM_TYPING_EVERY = float(os.environ.get("BENCH_STORM_EVERY", "3.0"))
STORM_CONNECT_BATCH = 10  # daphne drops handshakes it cannot finish within 5 s


# ---------------------------------------------------------------- client process


async def client_process(urls: list[str]) -> None:
    """Connect every URL (in batches), then count and time `message.created` events until
    told to stop on stdin; report `done <round>` when every live client has a round, and a
    JSON result at the end."""
    from websockets.asyncio.client import connect

    common.raise_nofile()
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    errors = {"connect": 0, "closed": 0}
    latencies: dict[int, list[float]] = {}
    sockets = []
    stopping = False

    async def open_one(url):
        try:
            ws = await connect(url, compression=None, ping_interval=None, open_timeout=30)
            welcome = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if welcome.get("event") != "welcome":
                raise RuntimeError(f"unexpected first frame {welcome}")
            return ws
        except Exception as exc:
            errors["connect"] += 1
            print(f"# connect failed: {exc!r}", file=sys.stderr, flush=True)
            return None

    for start in range(0, len(urls), CONNECT_BATCH):
        batch = await asyncio.gather(
            *(open_one(url) for url in urls[start : start + CONNECT_BATCH])
        )
        sockets += [ws for ws in batch if ws is not None]
        await asyncio.sleep(0.05)

    live = len(sockets)

    async def read(ws):
        nonlocal live
        try:
            async for raw in ws:
                arrived = time.monotonic()
                event = json.loads(raw)
                if event.get("event") != "message.created":
                    continue
                data = event["data"]
                got = latencies.setdefault(data["round"], [])
                got.append(round((arrived - data["sent_at"]) * 1000, 3))
                if len(got) == live:
                    print(f"done {data['round']}", flush=True)
        except Exception:
            pass
        if not stopping:
            errors["closed"] += 1
            live -= 1

    readers = [loop.create_task(read(ws)) for ws in sockets]
    print(f"ready {len(sockets)}", flush=True)
    remaining = WORKER_DEADLINE - (time.monotonic() - started)
    try:
        await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.readline), remaining)
    except TimeoutError:
        pass
    stopping = True
    await asyncio.wait(
        [loop.create_task(ws.close()) for ws in sockets] or [loop.create_task(asyncio.sleep(0))],
        timeout=10,
    )
    for reader in readers:
        reader.cancel()
    print(
        "result " + json.dumps({"latencies": latencies, "errors": errors, "clients": len(sockets)}),
        flush=True,
    )


# ---------------------------------------------------------------- typing storm process


async def storm_process(agents: list[list]) -> None:
    """Connect every agent ([url, conversation_id]), open its conversation (viewing), then
    send a typing signal every STORM_TYPING_EVERY s per agent until told to stop on stdin;
    reads (and counts) what it hears. Reports `ready <n>`, then a JSON result."""
    import random

    from websockets.asyncio.client import connect

    common.raise_nofile()
    # 200 agents' browsers are 200 other machines, not this server's two cores: the process
    # that plays them yields the CPU to daphne (the listeners' processes are in both phases).
    os.nice(19)
    loop = asyncio.get_running_loop()
    counts = {"sent": 0, "heard": 0, "errors": 0}
    stopping = False
    sockets = []

    async def open_one(url, conversation_id):
        try:
            ws = await connect(url, compression=None, ping_interval=None, open_timeout=30)
            await asyncio.wait_for(ws.recv(), 30)  # welcome
            await ws.send(
                json.dumps(
                    {"event": "conversation.viewing", "data": {"conversation_id": conversation_id}}
                )
            )
            return ws, conversation_id
        except Exception as exc:
            counts["errors"] += 1
            print(f"# storm connect failed: {exc!r}", file=sys.stderr, flush=True)
            return None

    for start in range(0, len(agents), STORM_CONNECT_BATCH):
        batch = await asyncio.gather(
            *(open_one(*agent) for agent in agents[start : start + STORM_CONNECT_BATCH])
        )
        sockets += [item for item in batch if item is not None]
        await asyncio.sleep(0.2)

    async def read(ws):
        try:
            async for raw in ws:
                if '"conversation.typing"' in raw:
                    counts["heard"] += 1
        except Exception:
            if not stopping:
                counts["errors"] += 1

    async def type_in(ws, conversation_id):
        frame = json.dumps(
            {"event": "conversation.typing", "data": {"conversation_id": conversation_id}}
        )
        await asyncio.sleep(random.random() * STORM_TYPING_EVERY)  # noqa: S311 (spread, not crypto)
        while not stopping:
            try:
                await ws.send(frame)
                counts["sent"] += 1
            except Exception:
                counts["errors"] += 1
                return
            await asyncio.sleep(STORM_TYPING_EVERY)

    tasks = [loop.create_task(read(ws)) for ws, _ in sockets]
    print(f"ready {len(sockets)}", flush=True)
    await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.readline), WORKER_DEADLINE)
    typers = [loop.create_task(type_in(ws, conversation_id)) for ws, conversation_id in sockets]
    await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.readline), WORKER_DEADLINE)
    stopping = True
    for task in typers + tasks:
        task.cancel()
    await asyncio.wait(
        [loop.create_task(ws.close()) for ws, _ in sockets] or [loop.create_task(asyncio.sleep(0))],
        timeout=10,
    )
    print("result " + json.dumps(counts), flush=True)


# ---------------------------------------------------------------- bare server process


async def bare_server(port: int, redis_url: str, channel: str) -> None:
    """The floor: websockets' own broadcast to every connection, fed by one Redis
    subscription, the event decoded and encoded once (as our hub does)."""
    import redis.asyncio as aioredis
    from websockets.asyncio.server import broadcast, serve

    common.raise_nofile()
    connections = set()

    async def handler(ws):
        connections.add(ws)
        try:
            await ws.send(json.dumps({"event": "welcome", "data": {}}))
            async for _ in ws:
                pass
        finally:
            connections.discard(ws)

    async with serve(handler, "127.0.0.1", port, compression=None, ping_interval=None):
        client = aioredis.Redis.from_url(redis_url)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(channel)
        print("ready", flush=True)
        deadline = time.monotonic() + WORKER_DEADLINE
        while time.monotonic() < deadline:
            message = await pubsub.get_message(timeout=1.0)
            if message and message["type"] == "message":
                event = json.loads(message["data"])
                broadcast(connections, json.dumps(event["payload"]))


# ---------------------------------------------------------------- orchestration


class Worker:
    def __init__(self, process):
        self.process = process
        self.lines: asyncio.Queue[str] = asyncio.Queue()
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self):
        while line := await self.process.stdout.readline():
            await self.lines.put(line.decode().strip())

    async def expect(self, prefix: str, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = await asyncio.wait_for(self.lines.get(), left)
            except TimeoutError:
                return None
            if line.startswith(prefix):
                return line
        return None


async def spawn(*args: str, env: dict | None = None):
    return await asyncio.create_subprocess_exec(
        sys.executable,
        os.path.abspath(__file__),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=env,
        limit=64 * 1024 * 1024,  # the result line holds every latency
    )


class Listeners:
    """Client processes holding `urls` open across several measured phases: connect once
    (`open`), time rounds as often as wanted (`rounds`, each phase with its own round numbers),
    then `close` and split the latencies by phase (`phase`)."""

    def __init__(self, urls: list[str]):
        self.urls = urls
        self.workers: list[Worker] = []
        self.connected = 0
        self.results: list[dict | None] = []
        self.next_round = 0

    async def open(self) -> None:
        share = [self.urls[index::WORKERS] for index in range(WORKERS)]
        for part in share:
            self.workers.append(Worker(await spawn("_client", json.dumps(part))))
        for worker in self.workers:
            line = await worker.expect("ready", 300)
            if line is None:
                raise RuntimeError("a client process did not get ready")
            self.connected += int(line.split()[1])
        await asyncio.sleep(1.0)  # let the connect storm settle

    async def rounds(self, publish, count: int = ROUNDS) -> dict:
        """WARMUP_ROUNDS + `count` rounds; the phase: its measured round numbers and misses."""
        first = self.next_round
        self.next_round += WARMUP_ROUNDS + count
        missed = 0
        for number in range(first, self.next_round):
            publish(number)
            for worker in self.workers:
                if await worker.expect(f"done {number}", ROUND_TIMEOUT) is None:
                    missed += 1
            await asyncio.sleep(0.2)
        return {"measured": range(first + WARMUP_ROUNDS, self.next_round), "missed": missed}

    async def close(self) -> None:
        try:
            for worker in self.workers:
                if worker.process.returncode is not None:
                    self.results.append(None)
                    continue
                worker.process.stdin.write(b"stop\n")
                await worker.process.stdin.drain()
                line = await worker.expect("result ", 60)
                self.results.append(json.loads(line.split(" ", 1)[1]) if line else None)
        finally:
            for worker in self.workers:
                if worker.process.returncode is None:
                    try:
                        worker.process.kill()
                    except ProcessLookupError:
                        pass
                await worker.process.wait()
                worker.reader.cancel()

    def phase(self, rounds: dict, *, count_closed: bool = True) -> dict:
        """The latencies of one phase's measured rounds, and its errors (connect failures and
        closed sockets are counted in the phase given `count_closed`, once)."""
        latencies = []
        errors = (len(self.urls) - self.connected) if count_closed else 0
        for result in self.results:
            if result is None:
                errors += 1 if count_closed else 0
                continue
            if count_closed:
                errors += result["errors"]["closed"]
            for number, values in result["latencies"].items():
                if int(number) in rounds["measured"]:
                    latencies += values
        expected = self.connected * len(rounds["measured"])
        errors += max(0, expected - len(latencies))  # deliveries that never came
        return {
            "latencies": latencies,
            "errors": errors,
            "connected": self.connected,
            "missed": rounds["missed"],
        }


async def measure(urls: list[str], publish) -> dict:
    """Spread `urls` over client processes, connect, run the rounds, collect everything."""
    listeners = Listeners(urls)
    try:
        await listeners.open()
        rounds = await listeners.rounds(publish)
    finally:
        await listeners.close()
    return listeners.phase(rounds)


def make_users(count: int):
    from accounts.models import ApiToken, Company, Role, User

    company = Company.objects.create(name="Bench Fan-out", slug="bench-fanout")
    other = Company.objects.create(name="Bench Other", slug="bench-fanout-other")
    User.objects.create(username="bench-fanout-other", company=other, role=Role.AGENT)
    tokens = []
    for number in range(count):
        user = User.objects.create(username=f"bench-fanout-{number}", company=company)
        tokens.append(ApiToken.issue(user, "bench")[1])
    return company, tokens


async def run_daphne(env, tokens, n, company_id):
    from messaging import realtime

    port = common.free_port()
    server = common.start_daphne(env, port)
    try:
        urls = [f"ws://127.0.0.1:{port}/ws/?token={tokens[i % len(tokens)]}" for i in range(n)]

        profiler = None

        def publish(number):
            nonlocal profiler
            if number == WARMUP_ROUNDS and os.environ.get("BENCH_PYSPY"):
                # BENCH_PYSPY=<file>: sample daphne during the measured rounds (collapsed stacks)
                profiler = subprocess.Popen(
                    [str(common.VENV_BIN / "py-spy"), "record", "--pid", str(server.pid),
                     "--rate", "1000", "--format", "raw", "--nonblocking",
                     "--output", f"{os.environ['BENCH_PYSPY']}.{n}.txt"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )  # fmt: skip
                time.sleep(1.0)
            data = {"id": number, "body": "Hello, is this still available?", "round": number}
            data["sent_at"] = time.monotonic()
            realtime.publish_now(
                [f"company.{company_id}"], {"event": "message.created", "data": data}
            )

        return await measure(urls, publish)
    finally:
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            try:
                profiler.wait(30)
            except subprocess.TimeoutExpired:
                profiler.kill()
        common.stop(server)


async def run_bare(env, n):
    import redis

    port = common.free_port()
    server = await spawn("_bare", str(port), env["REDIS_URL"], BARE_CHANNEL)
    try:
        line = await asyncio.wait_for(server.stdout.readline(), 30)
        if line.decode().strip() != "ready":
            raise RuntimeError("the bare server did not start")
        publisher = redis.Redis.from_url(env["REDIS_URL"])
        urls = [f"ws://127.0.0.1:{port}/" for _ in range(n)]

        def publish(number):
            data = {"id": number, "body": "Hello, is this still available?", "round": number}
            data["sent_at"] = time.monotonic()
            payload = {"event": "message.created", "data": data}
            publisher.publish(
                BARE_CHANNEL, json.dumps({"groups": ["company.1"], "payload": payload})
            )

        return await measure(urls, publish)
    finally:
        if server.returncode is None:
            server.kill()
        await server.wait()


def make_storm(company_id: int):
    """STORM_AGENTS agents of the company (their tokens) and STORM_CONVERSATIONS
    conversations of its WhatsApp number: [token, conversation id] per agent."""
    from accounts.models import ApiToken, User
    from channels_integrations.models import WhatsAppNumber
    from messaging.models import Conversation

    number = WhatsAppNumber.objects.create(
        company_id=company_id, phone="+4917000000001", display_name="Bench storm"
    )
    conversations = [
        Conversation.objects.create(
            company_id=company_id,
            platform="whatsapp",
            source_id=number.pk,
            external_thread_id=f"storm-{index}",
        ).pk
        for index in range(STORM_CONVERSATIONS)
    ]
    agents = []
    for index in range(STORM_AGENTS):
        user = User.objects.create(username=f"bench-storm-{index}", company_id=company_id)
        agents.append([ApiToken.issue(user, "storm")[1], conversations[index % len(conversations)]])
    return agents


async def run_storm(env, tokens, company_id, agents) -> dict:
    """Baseline rounds, then the same rounds during a typing storm, on one daphne."""
    from messaging import realtime

    port = common.free_port()
    server = common.start_daphne(env, port)
    storm = listeners = None
    try:
        urls = [
            f"ws://127.0.0.1:{port}/ws/?token={tokens[i % len(tokens)]}" for i in range(N_STORM)
        ]

        def publish(number):
            data = {"id": number, "body": "Hello, is this still available?", "round": number}
            data["sent_at"] = time.monotonic()
            realtime.publish_now(
                [f"company.{company_id}"], {"event": "message.created", "data": data}
            )

        # The same listeners (connected once) are timed in both phases: a fair comparison.
        listeners = Listeners(urls)
        await listeners.open()
        # The agents connect (and open their conversations) before the baseline: both phases
        # fan each event out to the same sockets, and only the typing differs.
        storm_agents = [
            [f"ws://127.0.0.1:{port}/ws/?token={token}", conv] for token, conv in agents
        ]
        storm = Worker(await spawn("_storm", json.dumps(storm_agents)))
        if await storm.expect("ready", 300) is None:
            raise RuntimeError("the storm process did not get ready")
        await asyncio.sleep(3.0)  # let the connect storm settle
        common.note(
            f"typing storm: {listeners.connected} listeners and {len(agents)} agents "
            "connected, nobody typing (baseline)"
        )
        started, cpu_started = time.monotonic(), common.cpu_seconds(server.pid)
        quiet = await listeners.rounds(publish, STORM_ROUNDS)
        quiet_cpu = (common.cpu_seconds(server.pid) - cpu_started) / (time.monotonic() - started)
        storm.process.stdin.write(b"go\n")
        await storm.process.stdin.drain()
        await asyncio.sleep(2 * STORM_TYPING_EVERY)  # the storm is on
        common.note(
            f"typing storm: {len(agents)} agents typing in {STORM_CONVERSATIONS} conversations"
        )
        started, cpu_started = time.monotonic(), common.cpu_seconds(server.pid)
        stormy_rounds = await listeners.rounds(publish, STORM_ROUNDS)
        stormy_cpu = (common.cpu_seconds(server.pid) - cpu_started) / (time.monotonic() - started)
        storm.process.stdin.write(b"stop\n")
        await storm.process.stdin.drain()
        line = await storm.expect("result ", 60)
        counts = json.loads(line.split(" ", 1)[1]) if line else {"sent": 0, "heard": 0, "errors": 1}
        await listeners.close()
        baseline = listeners.phase(quiet)
        stormy = listeners.phase(stormy_rounds, count_closed=False)
        cpu = {"baseline": quiet_cpu, "storm": stormy_cpu}
        return {"baseline": baseline, "storm": stormy, "counts": counts, "cpu": cpu}
    finally:
        if storm is not None:
            if storm.process.returncode is None:
                try:
                    storm.process.kill()
                except ProcessLookupError:
                    pass
            await storm.process.wait()
            storm.reader.cancel()
        if listeners is not None and not listeners.results:
            await listeners.close()  # a failure on the way: the client processes end too
        common.stop(server)


def report_storm(outcome: dict) -> None:
    base = outcome["baseline"]["latencies"]
    stormy = outcome["storm"]["latencies"]
    base_p99 = common.percentile(base, 99) if base else float("nan")
    storm_p99 = common.percentile(stormy, 99) if stormy else float("nan")
    for name, values in (("baseline", base), ("storm", stormy)):
        common.emit(f"typing_{name}_p50_ms", common.percentile(values, 50) if values else "nan")
    common.emit("typing_baseline_p99_ms", base_p99)
    common.emit("typing_storm_p99_ms", storm_p99)
    if os.environ.get("BENCH_STORM_DEBUG"):
        for name, values in (("baseline", base), ("storm", stormy)):
            common.note(f"{name}: " + " ".join(f"{v:.1f}" for v in sorted(values)[-40:]))
    common.emit("typing_storm_ratio_p99", storm_p99 / base_p99 if base_p99 else float("nan"))
    # The share of one core daphne used in each phase: what the typing costs the server.
    common.emit("typing_baseline_daphne_cpu", round(outcome["cpu"]["baseline"], 3))
    common.emit("typing_storm_daphne_cpu", round(outcome["cpu"]["storm"], 3))
    common.emit("typing_storm_signals_sent", outcome["counts"]["sent"])
    common.emit("typing_storm_signals_heard", outcome["counts"]["heard"])
    common.emit(
        "typing_storm_errors",
        outcome["counts"]["errors"] + outcome["baseline"]["errors"] + outcome["storm"]["errors"],
    )


def report(prefix: str, n: int, outcome: dict) -> None:
    values = outcome["latencies"]
    common.emit(f"{prefix}_{n}_p50_ms", common.percentile(values, 50) if values else float("nan"))
    common.emit(f"{prefix}_{n}_p99_ms", common.percentile(values, 99) if values else float("nan"))
    common.emit(f"{prefix}_{n}_errors", outcome["errors"])


def prepare() -> tuple[dict, int, list[str], list]:
    """The bench database and Redis, emptied; one company with ten users and their tokens."""
    common.raise_nofile()
    env = common.setup_django(DB_NAME, REDIS_DB, CHANNEL)
    common.truncate_tenants()
    common.flush_redis(env["REDIS_URL"])
    company, tokens = make_users(10)  # ten users of one company share the sockets
    agents = make_storm(company.pk)
    from django.db import connection

    connection.close()
    return env, company.pk, tokens, agents


async def orchestrate(quick: bool, env: dict, company_id: int, tokens: list[str], agents: list):
    report_storm(await run_storm(env, tokens, company_id, agents))
    if os.environ.get("BENCH_STORM_ONLY"):
        return
    sizes = (100, 300) if quick else (100, 1000)
    for n in sizes:
        common.note(f"{n} clients: daphne")
        ours = await run_daphne(env, tokens, n, company_id)
        common.note(f"{n} clients: bare websockets")
        bare = await run_bare(env, n)
        report("ws", n, ours)
        report("bare", n, bare)
        if ours["latencies"] and bare["latencies"]:
            ratio = common.percentile(ours["latencies"], 99) / common.percentile(
                bare["latencies"], 99
            )
            common.emit(f"ratio_p99_{n}_vs_bare", ratio)


# ---------------------------------------------------------------- --restart


async def reconnecting_clients(urls: list[str]) -> None:
    """Keep every URL connected the way realtime.js does; print `ready <n>` once all are in,
    then `back <n> <monotonic>` whenever the number of live sockets changes after a drop, and
    `result <json>` on `stop`."""
    import random

    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    common.raise_nofile()
    live = 0
    failures = 0
    last_welcome = 0.0
    stopping = asyncio.Event()

    async def keep(url):
        nonlocal live, failures, last_welcome
        attempt = 0
        while not stopping.is_set():
            try:
                async with connect(
                    url, compression=None, ping_interval=None, open_timeout=30
                ) as ws:
                    welcome = json.loads(await asyncio.wait_for(ws.recv(), 30))
                    if welcome.get("event") != "welcome":
                        raise RuntimeError("no welcome")
                    live += 1
                    last_welcome = time.monotonic()
                    attempt = 0
                    try:
                        async for _ in ws:
                            pass
                    except ConnectionClosed:
                        pass  # closed by the server (4012 on a restart): not a handshake
                    finally:
                        live -= 1
                    code = ws.close_code
            except Exception as exc:
                failures += 1
                print(f"# handshake failed: {exc!r}", file=sys.stderr, flush=True)
                code = None
            if stopping.is_set():
                return
            if code in (4012, 1012, 1001):
                delay = 0.2 + random.random() * 2.8  # noqa: S311
            else:
                delay = min(30.0, 2**attempt) * (0.5 + random.random())  # noqa: S311
                attempt += 1
            await asyncio.sleep(delay)

    tasks = []
    for start in range(0, len(urls), CONNECT_BATCH):
        tasks += [asyncio.create_task(keep(url)) for url in urls[start : start + CONNECT_BATCH]]
        await asyncio.sleep(0.2)
    while live < len(urls):
        await asyncio.sleep(0.05)
    failures = 0  # the first connect storm is not what is measured
    print(f"ready {live}", flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = (await reader.readline()).decode().strip()
        if line == "stop" or not line:
            break
        if line == "status":
            print(f"status {live} {last_welcome} {failures}", flush=True)
    stopping.set()
    print(f"result {json.dumps({'live': live, 'failures': failures})}", flush=True)
    for task in tasks:
        task.cancel()


async def run_restart(quick: bool, env: dict, tokens: list[str]) -> None:
    from cluster import Cluster

    n = 300 if quick else 1000
    env = {**env, "DB_POOL_MAX_SIZE": "4"}
    with Cluster(env, web=0, ws=2) as cluster:
        urls = [
            f"ws://127.0.0.1:{cluster.port}/ws/?token={tokens[i % len(tokens)]}" for i in range(n)
        ]
        workers = [
            Worker(await spawn("_reconnect", json.dumps(urls[i::WORKERS]))) for i in range(WORKERS)
        ]
        try:
            for worker in workers:
                if await worker.expect("ready", 300) is None:
                    raise RuntimeError("a client process did not get ready")

            async def status():
                live, last, failures = 0, 0.0, 0
                for worker in workers:
                    worker.process.stdin.write(b"status\n")
                    await worker.process.stdin.drain()
                    parts = (await worker.expect("status", 30)).split()
                    live += int(parts[1])
                    last = max(last, float(parts[2]))
                    failures += int(parts[3])
                return live, last, failures

            back_times = []
            for index in range(len(cluster.ws_ports)):
                await asyncio.sleep(2.0)
                signalled = time.monotonic()
                process = cluster.processes[f"ws{index}"]
                process.send_signal(signal.SIGTERM)
                await asyncio.to_thread(process.wait, 60)
                await asyncio.to_thread(cluster.start_ws, index)
                deadline = signalled + 60
                while time.monotonic() < deadline:
                    live, last, _ = await status()
                    if live == n and last > signalled:
                        break
                    await asyncio.sleep(0.1)
                back_times.append(last - signalled if live == n else float("inf"))
                common.note(f"ws{index} restarted: {live}/{n} back")
            live, _, failures = await status()
            for worker in workers:
                worker.process.stdin.write(b"stop\n")
                await worker.process.stdin.drain()
                await worker.expect("result", 30)
        finally:
            for worker in workers:
                if worker.process.returncode is None:
                    worker.process.kill()
                await worker.process.wait()
                worker.reader.cancel()
    common.emit("restart_clients", n)
    common.emit("restart_ws_processes", len(back_times))
    common.emit("restart_back_s", max(back_times))
    common.emit("restart_dropped_handshakes", failures)
    common.emit("restart_lost_clients", n - live)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "_reconnect":
        asyncio.run(reconnecting_clients(json.loads(sys.argv[2])))
        return
    if "--restart" in sys.argv:
        sys.argv.remove("--restart")
        args = common.parse_args(__doc__.splitlines()[0])
        env, _, tokens, _agents = prepare()
        asyncio.run(run_restart(args.quick, env, tokens))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_client":
        asyncio.run(client_process(json.loads(sys.argv[2])))
    elif len(sys.argv) > 1 and sys.argv[1] == "_storm":
        asyncio.run(storm_process(json.loads(sys.argv[2])))
    elif len(sys.argv) > 1 and sys.argv[1] == "_bare":
        asyncio.run(bare_server(int(sys.argv[2]), sys.argv[3], sys.argv[4]))
    else:
        args = common.parse_args(__doc__.splitlines()[0])
        asyncio.run(orchestrate(args.quick, *prepare()))


if __name__ == "__main__":
    main()
