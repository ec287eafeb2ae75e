"""The transactional outbox for outbound messages under faults: sends through the HTTP API to a
fake WhatsApp Cloud (Graph) API, while the Celery worker is SIGKILLed (its whole process group)
twice and Redis (broker, cache, realtime) is killed and restarted once.

    .venv/bin/python bench/outbox.py [--quick] [--sends N] [--rate R] [--threads T]

GOAL: lost 0, duplicated 0.

Setup: its own PostgreSQL database (switchboard_bench_outbox, migrated when missing), a PRIVATE
redis-server on a free port (no persistence: a restart loses the broker's queue, the send
records and everything else in it), one daphne, one Celery worker (prefork, 2 processes), real
Celery beat (the outbox sweeper every OUTBOX_SWEEP_SECONDS=2; OUTBOX_REQUEUE_SECONDS=5,
SEND_CLAIM_STALE_SECONDS=15) and tests.far_end.GraphFake in this process as Meta's servers.
One company, one Cloud API number, 200 conversations (--quick: 40).

The run: 2,000 sends (--quick: 200) paced at 12/s (--quick: 10/s), what one worker of two
processes keeps up with next to daphne on a 2-core machine (--rate 0: unpaced, a stress run:
then a backlog builds and the recovery figures mostly measure draining it), by 4 client threads, POST /api/v1/conversations/{id}/messages/ with a unique
body ("bench <run> <n>") and an Idempotency-Key each; a request that fails (connection error,
5xx) is sent again with the same key until it gets a 2xx. After 25% of the requests were
answered the worker's process group gets SIGKILL and a new worker is started at once; at 45%
Redis is killed (SIGKILL) and started again, empty, on the same port 3 s later; at 60% the
worker is killed again (each fault at least 4 s after the previous one ended). A worker that
exits by itself is restarted after 5 s, as systemd does (Restart=on-failure, RestartSec=5 in
deploy/systemd/switchboard-worker.service), and counted (worker_crashes). Then the run waits
until no message is `queued` (claimed rows are `queued` too) or 180 s (--quick: 25 s).

Figures (stdout, `name: value`; progress goes to stderr):
  sends         requests answered 2xx (one per Idempotency-Key)
  rows          outbound message rows in the database (should equal sends)
  sent          status sent AND the far end received the body exactly once
  failed        status failed (whatever the far end saw); failed_reason_<i>: "<count> <reason>"
                per distinct reason; failed_received: failed ones the far end did receive
                (a send interrupted between the far end's acceptance and our record)
  lost          neither failed nor received: still queued at the end, or sent/delivered/read
                in our database but never received by the far end
  duplicated    messages whose body the far end received more than once
  still_queued  (part of lost) rows still `queued` at the end; duplicate_rows: rows beyond one
                per body (an Idempotency-Key that did not hold); received_unknown: bodies the
                far end received that no row has
  http_500      500 answers (a committed row must never get one); http_retries: requests
                sent again (after a connection error or a 5xx); http_transport_errors:
                connection errors/timeouts among them; http_other: other non-2xx answers
  latency_*_s   per message: its outcome time (first receipt at the far end; for a failed or
                never-received message, when this process first saw it leave `queued`, polled
                every 0.25 s) minus its row's created_at; p50, p99, max
  recovery_<fault>_s
                for one fault: the latest outcome time among the messages the fault could have
                touched (created before the fault ended, not yet settled when it began), minus
                the end of the fault: i.e. how long after the fault was over the last of them
                still waited. A fault begins at the SIGKILL / at killing Redis; it ends when the
                replacement worker was launched / when the new Redis accepts connections. It
                includes draining whatever backlog was waiting anyway (backlog_<fault>: queued
                rows when the fault began) and, for kills, the stale-claim settling
                (SEND_CLAIM_STALE_SECONDS + a sweep) of the sends that were in flight.
  max_recovery_s
                the largest recovery_<fault>_s: the longest time any message waited beyond a
                fault
  resume_<fault>_s
                from the end of the fault to the far end's next receipt (the backlog moving
                again)
  worker_crashes
                workers that exited without being killed by the bench (see the notes on stderr)
  enqueue_failed
                sends whose immediate enqueue after commit failed in daphne (its "not queued
                (broker down?)" warning): expected only while Redis is down
  sweeper_requeued, sweeper_settled_sent, sweeper_settled_unknown
                what the sweeper did, summed from the workers' logs of its runs
  sends_s       first request to the last answer
  run_s         first request to the end of the wait; total_s: the whole script's wall time

Child logs: var/bench-outbox-{daphne,worker-<n>,beat}.log. Settings are production-like
(DEBUG off, as the other benches); BENCH_LOG_LEVEL=INFO for more log lines.
"""

import ast
import collections
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import _common as common

DB_NAME = "switchboard_bench_outbox"
CHANNEL = "switchboard:events:bench:outbox"
LOG_DIR = common.ROOT / "var"
SETTINGS = {
    "OUTBOX_REQUEUE_SECONDS": "5",
    "OUTBOX_SWEEP_SECONDS": "2",
    "SEND_CLAIM_STALE_SECONDS": "15",
    "WHATSAPP_GRAPH_TIMEOUT": "5",
    "WHATSAPP_SEND_RATE_PER_MINUTE": "100000",
    "PYTHONUNBUFFERED": "1",
}
FAULTS = [("kill1", 0.25, "kill"), ("redis", 0.45, "redis"), ("kill2", 0.60, "kill")]
REDIS_DOWN_SECONDS = 3.0
SUPERVISOR_RESTART_SECONDS = 5.0  # RestartSec of deploy/systemd/switchboard-worker.service
FAULT_GAP_SECONDS = 4.0  # at least this long between the end of a fault and the next one
POLL_SECONDS = 0.25
QUEUED, FAILED = "queued", "failed"
SENT_STATUSES = {"sent", "delivered", "read"}


# ---------------------------------------------------------------- processes


class PrivateRedis:
    """redis-server on its own port, no persistence: killing it loses everything in it."""

    def __init__(self):
        self.port = common.free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self) -> float:
        """Start and wait until it accepts connections; returns that moment (time.time())."""
        self.process = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port),
             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return time.time()
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def kill_group(process: subprocess.Popen | None, sig=signal.SIGKILL, timeout: float = 10.0):
    """Signal a process started with start_new_session=True and all of its children."""
    if process is None:
        return
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(5)


def stop_group(process: subprocess.Popen | None, timeout: float = 10.0) -> None:
    """SIGTERM the group (a warm shutdown), SIGKILL after `timeout`; also kills children
    left behind by a leader that already exited."""
    if process is None:
        return
    if process.poll() is None:
        kill_group(process, signal.SIGTERM, timeout)
    try:
        os.killpg(process.pid, signal.SIGKILL)  # stragglers of the group, if any
    except (ProcessLookupError, PermissionError):
        pass


class Celery:
    """The worker (replaced after each kill) and beat. A worker that exits by itself is
    restarted as systemd would (deploy/systemd/switchboard-worker.service: Restart=on-failure,
    RestartSec=5), and counted."""

    def __init__(self, env: dict):
        self.env = env
        self.workers: list[subprocess.Popen] = []
        self.beat: subprocess.Popen | None = None
        self.lock = threading.RLock()
        self.crashes: list[str] = []
        self.stopping = threading.Event()
        self.supervisor = threading.Thread(target=self._supervise, name="supervisor", daemon=True)

    def _supervise(self) -> None:
        restart_at = None
        while not self.stopping.wait(0.1):
            with self.lock:
                worker = self.worker
                if restart_at is None and worker.poll() is not None and not worker.killed:
                    worker.killed = True  # counted once
                    code = worker.returncode
                    self.crashes.append(f"{worker.log_path.name} exited with {code}")
                    common.note(f"worker pid {worker.pid} exited by itself with code {code}")
                    if code != 0:  # Restart=on-failure
                        restart_at = time.monotonic() + SUPERVISOR_RESTART_SECONDS
                    else:
                        common.note("exit code 0: systemd (Restart=on-failure) would not restart")
                elif restart_at is not None and time.monotonic() >= restart_at:
                    restart_at = None
                    if self.worker is worker:  # not replaced by a kill meanwhile
                        self.start_worker()
                        common.note(f"worker restarted (pid {self.worker.pid})")

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log_path = LOG_DIR / f"bench-outbox-{name}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [str(common.VENV_BIN / "celery"), "-A", "crm", *args],
                cwd=common.ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: killpg reaches the pool
            )
        process.log_path = log_path
        process.killed = False  # by us (a fault or the end of the run)
        return process

    def start_worker(self) -> subprocess.Popen:
        number = len(self.workers) + 1
        process = self._spawn(
            f"worker-{number}",
            ["worker", "--pool=prefork", "--concurrency=2", "-Q", "celery,outbox",
             "--without-gossip", "--without-mingle", "--loglevel=INFO",
             "-n", f"bench-outbox-{number}@%h"],
        )  # fmt: skip
        self.workers.append(process)
        return process

    @property
    def worker(self) -> subprocess.Popen:
        return self.workers[-1]

    def wait_ready(self, process: subprocess.Popen, timeout: float = 60.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"worker exited with {process.returncode}: {process.log_path}")
            if b" ready." in process.log_path.read_bytes():
                return time.time()
            time.sleep(0.05)
        raise RuntimeError(f"worker not ready after {timeout}s: {process.log_path}")

    def start_beat(self) -> None:
        schedule = LOG_DIR / "bench-outbox-celerybeat-schedule"
        for stale in LOG_DIR.glob("bench-outbox-celerybeat-schedule*"):
            stale.unlink()
        self.beat = self._spawn("beat", ["beat", "--loglevel=INFO", f"--schedule={schedule}"])

    def stop(self) -> None:
        self.stopping.set()
        with self.lock:
            for process in [self.beat, *self.workers]:
                if process is not None:
                    process.killed = True
                    stop_group(process)


# ---------------------------------------------------------------- the far end


def timed_graph_fake():
    """GraphFake that also notes when (time.time()) it accepted each body."""
    from tests.far_end import GraphFake

    class TimedGraphFake(GraphFake):
        def __init__(self):
            super().__init__()
            self.accepted_at: dict[str, float] = {}  # body -> first acceptance

        def answer(self, path, authorization, raw):
            status, body = super().answer(path, authorization, raw)
            if status == 200:  # accepted: the request parsed
                now, text = time.time(), json.loads(raw)["text"]["body"]
                with self.lock:
                    self.accepted_at.setdefault(text, now)
            return status, body

    return TimedGraphFake().start()


# ---------------------------------------------------------------- data


def make_data(conversations: int):
    from accounts.models import ApiToken, Company, Role, User
    from channels_integrations.models import WhatsAppNumber
    from crm.models import Client
    from tests.factories import ConversationFactory

    company = Company.objects.create(name="Bench Outbox", slug="bench-outbox")
    user = User.objects.create(username="bench-outbox-admin", company=company, role=Role.ADMIN)
    _, token = ApiToken.issue(user, "bench")
    number = WhatsAppNumber.objects.create(
        company=company,
        phone="+4917000000077",
        display_name="Bench outbox line",
        provider=WhatsAppNumber.Provider.CLOUD,
        status=WhatsAppNumber.Status.CONNECTED,
        cloud_phone_number_id="106500000077",
        cloud_access_token="EAAG-bench-access-token",
    )
    ids = []
    for index in range(conversations):
        phone = f"+4915120{index:06d}"
        client = Client.objects.create(company=company, name=f"Client {index}", phone=phone)
        # The factory's client wrote just now: the 24-hour window is open, so free text may go
        # out (WhatsApp Cloud's rule; outside it the API answers 400 and nothing is sent).
        conversation = ConversationFactory(
            company=company, source=number, external_thread_id=phone.lstrip("+"), client=client
        )
        ids.append(conversation.pk)
    return company, token, ids


# ---------------------------------------------------------------- client side


class Clients:
    """Threads sending the POSTs; each request is retried with the same key until a 2xx."""

    def __init__(self, port: int, token: str, conversations: list[int], total: int, run: str,
                 threads: int, rate: float):  # fmt: skip
        self.port, self.token, self.run = port, token, run
        self.conversations, self.total, self.rate = conversations, total, rate
        self.work: queue.Queue[int] = queue.Queue()
        for n in range(total):
            self.work.put(n)
        self.lock = threading.Lock()
        self.answered = 0
        self.statuses = collections.Counter()
        self.retries = 0
        self.transport_errors = 0
        self.failures: list[str] = []  # requests given up (non-retryable answers)
        self.message_ids: dict[int, int] = {}  # n -> message id
        self.started = None
        self.stopping = threading.Event()
        self.threads = [
            threading.Thread(target=self._loop, name=f"client-{i}", daemon=True)
            for i in range(threads)
        ]

    def body(self, n: int) -> str:
        return f"bench {self.run} {n}"

    def start(self) -> None:
        self.started = time.monotonic()
        for thread in self.threads:
            thread.start()

    def join(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self.threads)

    def _loop(self) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        with httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30.0) as http:
            while not self.stopping.is_set():
                try:
                    n = self.work.get_nowait()
                except queue.Empty:
                    return
                if self.rate:
                    wait = self.started + n / self.rate - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                self._send(http, headers, n)

    def _send(self, http, headers: dict, n: int) -> None:
        conversation = self.conversations[n % len(self.conversations)]
        url = f"/api/v1/conversations/{conversation}/messages/"
        key_headers = {**headers, "Idempotency-Key": f"bench-outbox-{self.run}-{n}"}
        first = True
        while not self.stopping.is_set():
            if not first:
                with self.lock:
                    self.retries += 1
                time.sleep(0.2)
            first = False
            try:
                response = http.post(url, json={"body": self.body(n)}, headers=key_headers)
            except Exception as exc:  # connection refused/reset, timeout: same key again
                with self.lock:
                    self.transport_errors += 1
                common.note(f"request {n}: {exc.__class__.__name__}: {exc}; retrying")
                continue
            with self.lock:
                self.statuses[response.status_code] += 1
            if 200 <= response.status_code < 300:
                with self.lock:
                    self.message_ids[n] = response.json()["id"]
                    self.answered += 1
                return
            if response.status_code >= 500:
                common.note(f"request {n}: HTTP {response.status_code}; retrying")
                continue
            with self.lock:
                self.failures.append(f"{response.status_code} {response.text[:200]}")
                self.answered += 1
            common.note(f"request {n}: HTTP {response.status_code} {response.text[:200]}")
            return


# ---------------------------------------------------------------- watching the outbox


class Poller(threading.Thread):
    """Notes when each message was first seen out of `queued`, and the queued count."""

    def __init__(self, company_id: int):
        super().__init__(name="poller", daemon=True)
        self.company_id = company_id
        self.left_queued_at: dict[int, float] = {}
        self.queued = 0
        self.stopping = threading.Event()
        self.errors = 0

    def run(self) -> None:
        from django.db import connection

        sql = (
            "SELECT m.id, m.status FROM messaging_message m "
            "JOIN messaging_conversation c ON c.id = m.conversation_id "
            "WHERE c.company_id = %s AND m.direction = 'out'"
        )
        try:
            while not self.stopping.is_set():
                try:
                    with connection.cursor() as cursor:
                        cursor.execute(sql, [self.company_id])
                        rows = cursor.fetchall()
                except Exception as exc:
                    self.errors += 1
                    common.note(f"poller: {exc!r}")
                    connection.close()
                    self.stopping.wait(1)
                    continue
                now = time.time()
                queued = 0
                for pk, status in rows:
                    if status == QUEUED:
                        queued += 1
                    elif pk not in self.left_queued_at:
                        self.left_queued_at[pk] = now
                self.queued = queued
                self.stopping.wait(POLL_SECONDS)
        finally:
            connection.close()


# ---------------------------------------------------------------- faults


class Fault:
    def __init__(self, name: str):
        self.name = name
        self.began = self.ended = None
        self.backlog = 0
        self.note = ""
        self.answered = 0
        self.recovery = 0.0
        self.resume = float("nan")


def kill_worker(celery: Celery, fault: Fault) -> None:
    with celery.lock:
        old = celery.worker
        fault.began = time.time()
        old.killed = True
        kill_group(old, signal.SIGKILL)
        celery.start_worker()
        fault.ended = time.time()
    fault.note = f"worker pid {old.pid} SIGKILLed (group); new worker pid {celery.worker.pid}"


def restart_redis(redis: PrivateRedis, fault: Fault) -> None:
    fault.began = time.time()
    redis.kill()
    time.sleep(REDIS_DOWN_SECONDS)
    fault.ended = redis.start()
    fault.note = f"redis down for {fault.ended - fault.began:.1f}s"


def log_figures(daphne, celery: "Celery") -> dict:
    """What the children's logs say: immediate enqueues that failed in the web process, and
    what the sweeper did (summed over its runs in every worker)."""
    figures = {}
    text = daphne.log_path.read_text(errors="replace") if daphne is not None else ""
    figures["enqueue_failed"] = text.count("not queued (broker down?)")
    totals = collections.Counter()
    pattern = re.compile(r"sweep_outbox\[[^\]]*\] succeeded in [0-9.]+s: (\{.*\})")
    for process in celery.workers:
        for match in pattern.finditer(process.log_path.read_text(errors="replace")):
            try:
                totals.update(ast.literal_eval(match.group(1)))
            except (ValueError, SyntaxError):
                continue
    for key in ("requeued", "settled_sent", "settled_unknown"):
        figures[f"sweeper_{key}"] = totals.get(key, 0)
    return figures


# ---------------------------------------------------------------- main


def main():  # noqa: C901, PLR0912, PLR0915 (one straight script)
    script_started = time.monotonic()
    args = common.parse_args(
        __doc__.splitlines()[0],
        sends=dict(type=int, default=None, help="number of sends (2000; --quick 200)"),
        rate=dict(type=float, default=None, help="requests/s (12; --quick 10), 0 unpaced"),
        threads=dict(type=int, default=4, help="client threads"),
    )
    total = args.sends or (200 if args.quick else 2000)
    rate = args.rate if args.rate is not None else (10.0 if args.quick else 12.0)
    conversations = 40 if args.quick else 200
    settle_timeout = 25.0 if args.quick else 180.0

    LOG_DIR.mkdir(parents=True, exist_ok=True)
    for old_log in LOG_DIR.glob("bench-outbox-worker-*.log"):
        old_log.unlink()  # the last run's only
    redis = PrivateRedis()
    fake = None
    daphne = None
    celery = None
    clients = None
    poller = None
    previous_sigterm = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        redis.start()
        fake = timed_graph_fake()
        env = common.bench_env(DB_NAME, 0, CHANNEL)
        env.update(SETTINGS)
        env.update(
            {
                "REDIS_URL": redis.url,
                "CELERY_BROKER_URL": redis.url,
                "WHATSAPP_GRAPH_URL": fake.url,
            }
        )
        os.environ.update(env)
        common.ensure_database(DB_NAME)
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", interactive=False, verbosity=0)
        child_env = {**os.environ, **env}

        from messaging.models import Message

        common.truncate_tenants()
        company, token, conversation_ids = make_data(conversations)
        run = time.strftime("%H%M%S")

        port = common.free_port()
        daphne = common.start_daphne(child_env, port, LOG_DIR / "bench-outbox-daphne.log")
        celery = Celery(child_env)
        celery.start_beat()
        celery.wait_ready(celery.start_worker())
        celery.supervisor.start()
        common.note(
            f"redis :{redis.port}, daphne :{port}, far end {fake.url}; {total} sends over "
            f"{conversations} conversations, {args.threads} threads, "
            f"{'unpaced' if not rate else f'{rate:g}/s'}"
        )

        poller = Poller(company.pk)
        poller.start()
        clients = Clients(port, token, conversation_ids, total, run, args.threads, rate)
        run_started = time.time()
        clients.start()

        faults = []
        for name, share, kind in FAULTS:
            earliest = faults[-1].ended + FAULT_GAP_SECONDS if faults else 0.0
            while time.time() < earliest or (
                clients.answered < share * total and any(t.is_alive() for t in clients.threads)
            ):
                time.sleep(0.02)
            fault = Fault(name)
            fault.backlog, fault.answered = poller.queued, clients.answered
            common.note(f"{name}: begins at {fault.answered}/{total} answered")
            if kind == "kill":
                kill_worker(celery, fault)
            else:
                restart_redis(redis, fault)
            common.note(f"{name}: {fault.note}")
            faults.append(fault)

        if not clients.join(600):
            clients.stopping.set()
            common.note("client threads still running after 600 s: stopped")
        sends_done = time.time()
        common.note(f"all requests answered after {sends_done - run_started:.1f}s; settling")

        outbound = Message.objects.filter(
            conversation__company=company, direction=Message.Direction.OUTBOUND
        )
        deadline = time.monotonic() + settle_timeout
        while time.monotonic() < deadline:
            if not outbound.filter(status=QUEUED).exists():
                break
            time.sleep(0.25)
        settled_at = time.time()
        time.sleep(POLL_SECONDS * 2)  # the poller sees the last ones
        poller.stopping.set()
        poller.join(5)

        # -------------------------------------------------------- counting
        rows = list(outbound.values_list("id", "body", "status", "error", "created_at"))
        with fake.lock:
            received = collections.Counter(sent.body for sent in fake.sent)
            accepted_at = dict(fake.accepted_at)
        bodies = {clients.body(n) for n in range(total)}
        by_body = collections.Counter(body for _pk, body, *_ in rows)

        sent = failed = lost = duplicated = failed_received = 0
        reasons = collections.Counter()
        latencies = []
        outcome_at: dict[int, float] = {}
        for pk, body, status, error, created_at in rows:
            times = received[body]
            duplicated += times > 1
            if status == FAILED:
                failed += 1
                reasons[error] += 1
                failed_received += times > 0
            elif status in SENT_STATUSES:
                sent += times == 1
                lost += times == 0
            else:  # still queued (claimed or not) when the wait ended
                lost += 1
            when = accepted_at.get(body) or poller.left_queued_at.get(pk)
            if when is not None:
                outcome_at[pk] = when
                latencies.append(when - created_at.timestamp())

        status_of = {pk: status for pk, _body, status, _error, _created in rows}
        for fault in faults:
            touched = [
                (outcome_at.get(pk, settled_at), pk)
                for pk, _body, _status, _error, created_at in rows
                if created_at.timestamp() < fault.ended
                and outcome_at.get(pk, settled_at) >= fault.began
            ]
            if touched:
                last, pk = max(touched)
                fault.recovery = last - fault.ended
                common.note(
                    f"{fault.name}: {len(touched)} message(s) touched; the last, id={pk} "
                    f"({status_of[pk]}), settled {fault.recovery:.1f}s after the fault ended"
                )
            after = [when for when in accepted_at.values() if when >= fault.ended]
            fault.resume = (min(after) - fault.ended) if after else float("nan")

        common.emit("sends", len(clients.message_ids))
        common.emit("rows", len(rows))
        common.emit("sent", sent)
        common.emit("failed", failed)
        for index, (reason, count) in enumerate(reasons.most_common(), 1):
            common.emit(f"failed_reason_{index}", f"{count} {reason or '(no reason)'}")
        common.emit("failed_received", failed_received)
        common.emit("lost", lost)
        common.emit("duplicated", duplicated)
        common.emit("still_queued", sum(1 for row in rows if row[2] == QUEUED))
        common.emit("duplicate_rows", sum(count - 1 for count in by_body.values() if count > 1))
        common.emit("received_unknown", sum(1 for body in received if body not in bodies))
        common.emit("http_500", clients.statuses.get(500, 0))
        common.emit("http_retries", clients.retries)
        common.emit("http_transport_errors", clients.transport_errors)
        other = sum(c for s, c in clients.statuses.items() if not 200 <= s < 300 and s != 500)
        common.emit("http_other", other)
        if latencies:
            common.emit("latency_p50_s", common.percentile(latencies, 50))
            common.emit("latency_p99_s", common.percentile(latencies, 99))
            common.emit("latency_max_s", max(latencies))
        for fault in faults:
            common.emit(f"backlog_{fault.name}", fault.backlog)
            common.emit(f"recovery_{fault.name}_s", fault.recovery)
            common.emit(f"resume_{fault.name}_s", fault.resume)
        common.emit("max_recovery_s", max((f.recovery for f in faults), default=0.0))
        common.emit("worker_crashes", len(celery.crashes))
        common.emit("sends_s", sends_done - run_started)
        common.emit("run_s", settled_at - run_started)
        for name, value in log_figures(daphne, celery).items():
            common.emit(name, value)
        for crash in celery.crashes:
            common.note(f"worker crash: {crash}")
        if clients.failures:
            common.note(f"requests given up: {collections.Counter(clients.failures)}")
        # A run whose sends the API refused measured nothing: say so by the exit status too.
        refused = total - len(clients.message_ids)
    finally:
        if clients is not None:
            clients.stopping.set()
        if poller is not None:
            poller.stopping.set()
        if celery is not None:
            celery.stop()
        common.stop(daphne)
        redis.kill()
        if fake is not None:
            fake.stop()
        signal.signal(signal.SIGTERM, previous_sigterm)
    common.emit("total_s", time.monotonic() - script_started)
    if refused:
        raise SystemExit(f"{refused} of {total} sends were not accepted by the API (see above)")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        common.note("interrupted; child processes stopped")
        raise SystemExit(130) from None
