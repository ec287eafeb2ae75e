"""Connections as a fleet: 1,000 fake Telegram accounts + 200 fake QR sessions on one host.

    .venv/bin/python bench/connections.py [--quick]

One real `manage.py connection_host` process against its own PostgreSQL database and Redis
database (db 9, flushed); the far ends are the test fakes at the adapter seams
(tests.telegram_fakes, tests.whatsapp_fakes), so everything from the adapter inward is real:
leases, fencing, PostgreSQL writes, the fleet supervisor. Prints:

- time_to_all_connected_s: supervisor assigns all, until every row says connected;
- rss_per_connection_kb and host_rss_mb: the host's RSS with all held vs. empty;
- idle_cpu_percent_of_core: the host's CPU over an idle window with everything held;
- a second host is started, the first killed (kill -9): takeover_s (until every lease is
  held by the survivor and every connection open again; split into takeover_noticed_s, until
  all were assigned to the survivor, and takeover_reconnect_s), takeover_supervisor_periods and
  held_twice (accounts seen open in two living processes at once; sampled every 50 ms).
--quick: 200 + 40 connections and shorter windows.
"""

import os
import signal
import subprocess
import sys
import threading
import time

import _common as common

DB_NAME = "switchboard_bench_connections"
REDIS_DB = 9
CHANNEL = "switchboard:events:bench:connections"
PERIOD = 10.0  # the supervisor's period in this bench


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def start_host(env: dict, capacity: int, name: str) -> subprocess.Popen:
    log = open(common.ROOT / "var" / f"bench-host-{name}.log", "wb")  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "manage.py", "connection_host", f"--capacity={capacity}"],
        cwd=common.ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def main():
    args = common.parse_args(
        __doc__.splitlines()[0],
        telegram=dict(type=int, default=None, help="Telegram accounts (default 1000)"),
        qr=dict(type=int, default=None, help="QR sessions (default 200)"),
    )
    telegram_count = args.telegram or (200 if args.quick else 1000)
    qr_count = args.qr or (40 if args.quick else 200)
    idle_window = 10.0 if args.quick else 30.0
    total = telegram_count + qr_count
    (common.ROOT / "var").mkdir(exist_ok=True)
    live_key = "bench-connections-live"
    settings_env = {
        "CONNECTION_HOSTS": "true",
        "CONNECTION_SUPERVISOR_SECONDS": str(PERIOD),
        "CONNECTION_HOST_TTL": "5",
        "CONNECTION_LEASE_SECONDS": "45",
        "CONNECTION_HOST_IDLE_THREADS": str(qr_count + 50),
        "TELEGRAM_CLIENT_FACTORY": "tests.telegram_fakes.FakeTelegramClient",
        "WHATSAPP_WEB_ADAPTER": "tests.whatsapp_fakes.FakeWebAdapter",
        "FAKE_WHATSAPP_MODE": "connect",
        "FAKE_WHATSAPP_LIVE_KEY": live_key,
        "FAKE_TELEGRAM_LIVE_KEY": live_key,
    }
    os.environ.update(settings_env)
    env = {**common.setup_django(DB_NAME, REDIS_DB, CHANNEL), **settings_env}
    common.raise_nofile()
    import redis
    from django.conf import settings

    from accounts.models import Company
    from channels_integrations import fleet
    from channels_integrations.models import (
        TelegramAccount,
        WhatsAppNumber,
        WhatsAppSession,
    )

    common.truncate_tenants()
    common.flush_redis(settings.REDIS_URL)
    client = redis.Redis.from_url(settings.REDIS_URL)
    company = Company.objects.create(name="Bench Fleet", slug="bench-fleet")
    TelegramAccount.objects.bulk_create(
        TelegramAccount(
            company=company,
            name=f"Telegram {i}",
            phone=f"+49171{i:07d}",
            api_id=28906808,
            api_hash="0123456789abcdef0123456789abcdef",
            session_string=f"tg{i}",
        )
        for i in range(telegram_count)
    )
    numbers = WhatsAppNumber.objects.bulk_create(
        WhatsAppNumber(
            company=company,
            phone=f"+49170{i:07d}",
            display_name=f"QR {i}",
            provider=WhatsAppNumber.Provider.WEB,
            cloud_phone_number_id=f"qr{i}",
        )
        for i in range(qr_count)
    )
    WhatsAppSession.objects.bulk_create(
        WhatsAppSession(number=number, status=WhatsAppSession.Status.STARTING) for number in numbers
    )
    tg_ids = list(TelegramAccount.objects.values_list("pk", flat=True))
    qr_ids = [number.pk for number in numbers]

    def connected() -> int:
        return (
            TelegramAccount.objects.filter(status="connected").count()
            + WhatsAppSession.objects.filter(status="connected").count()
        )

    hosts = []
    try:
        first = start_host(env, total + 100, "a")
        hosts.append(first)
        wait_for(lambda: any(h.endswith(f":{first.pid}") for h in fleet.live_hosts()), 60)
        time.sleep(2)
        base_rss = rss_kb(first.pid)
        common.note(f"host up (RSS {base_rss / 1024:.1f} MB); assigning {total}")
        started = time.perf_counter()
        fleet.supervise()
        wait_for(lambda: connected() == total, 300, interval=0.5)
        emit_time = time.perf_counter() - started
        common.emit("connections", total)
        common.emit("time_to_all_connected_s", emit_time)
        time.sleep(3)
        held_rss = rss_kb(first.pid)
        common.emit("host_rss_mb", held_rss / 1024)
        common.emit("rss_per_connection_kb", (held_rss - base_rss) / total)
        cpu_before, tick = common.cpu_seconds(first.pid), time.perf_counter()
        time.sleep(idle_window)
        idle = (common.cpu_seconds(first.pid) - cpu_before) / (time.perf_counter() - tick)
        common.emit("idle_cpu_percent_of_core", idle * 100)

        # A second host; the first is killed; the supervisor moves everything.
        second = start_host(env, total + 100, "b")
        hosts.append(second)
        wait_for(lambda: any(h.endswith(f":{second.pid}") for h in fleet.live_hosts()), 60)
        survivor = next(h for h in fleet.live_hosts() if h.endswith(f":{second.pid}"))
        dead = str(first.pid)
        held_twice: set[str] = set()
        stop = threading.Event()

        def live_now() -> dict[str, set[str]]:
            seen: dict[str, set[str]] = {}
            for member in client.smembers(live_key):
                pid, _, account = member.decode().partition(":")
                if pid != dead:
                    seen.setdefault(account, set()).add(pid)
            return seen

        def sample():
            while not stop.is_set():
                held_twice.update(a for a, pids in live_now().items() if len(pids) > 1)
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()

        def all_on_survivor() -> bool:
            tokens = client.mget(
                [fleet.coordination.key(f"telegram:account:{pk}") for pk in tg_ids]
                + [fleet.coordination.key(f"whatsapp:session:{pk}") for pk in qr_ids]
            )
            return (
                all(token and fleet.host_of(token.decode()) == survivor for token in tokens)
                and len(live_now()) == total
            )

        entries = [fleet.item("telegram:account", pk) for pk in tg_ids] + [
            fleet.item("whatsapp:session", pk) for pk in qr_ids
        ]
        assigned_at = None

        def assigned_to_survivor() -> bool:
            owners = client.hmget(fleet.coordination.key(fleet.OWNERS), entries)
            return all(owner and owner.decode() == survivor for owner in owners)

        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
        killed = time.perf_counter()
        periods = 0
        while not all_on_survivor() and time.perf_counter() - killed < 300:
            fleet.supervise()
            periods += 1
            deadline = time.monotonic() + PERIOD
            while time.monotonic() < deadline and not all_on_survivor():
                if assigned_at is None and assigned_to_survivor():
                    assigned_at = time.perf_counter() - killed
                time.sleep(0.1)
        takeover = time.perf_counter() - killed
        # Until the dead host's connections were assigned to the survivor (its heartbeat's
        # TTL, then a host that saw it go ran the supervisor), and from then until all held.
        common.emit("takeover_noticed_s", assigned_at if assigned_at is not None else takeover)
        common.emit("takeover_reconnect_s", takeover - (assigned_at or takeover))
        stop.set()
        sampler.join(5)
        common.emit("takeover_s", takeover)
        common.emit("takeover_supervisor_calls", periods)
        common.emit("takeover_in_supervisor_periods", takeover / PERIOD)
        common.emit("supervisor_period_s", PERIOD)
        common.emit("host_ttl_s", float(settings.CONNECTION_HOST_TTL))
        common.emit("held_twice", len(held_twice))
        common.emit("all_held_again", int(all_on_survivor()))
    finally:
        for process in hosts:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        client.delete(live_key)


def wait_for(predicate, timeout: float, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise SystemExit(f"not true within {timeout}s: {predicate}")


if __name__ == "__main__":
    main()
