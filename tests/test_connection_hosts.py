"""Connections as a fleet, with real processes: two connection hosts (`manage.py
connection_host`) against the real Redis and PostgreSQL hold Telegram listeners and QR-linked
WhatsApp sessions that the supervisor (fleet.supervise, as beat runs it) assigned to them.

The only stand-ins are the far ends at the adapter seams (tests.telegram_fakes,
tests.whatsapp_fakes); each host process records its open fake connections in a Redis set
("<pid>:<account>"), so the test sees every connection open anywhere and can count an account
held twice.
"""

import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
import redis
from django.conf import settings
from django.core.cache import cache

from channels_integrations import fleet
from channels_integrations.models import TelegramAccount, WhatsAppSession
from channels_integrations.telegram.listener import account_holder, send_through_listener
from channels_integrations.whatsapp.lease import number_holder
from channels_integrations.whatsapp.sessions import send_through_session

from .factories import (
    CompanyFactory,
    TelegramAccountFactory,
    UserFactory,
    WhatsAppNumberFactory,
)
from .processes import BASE_DIR, database_url, wait_for

PERIOD = 3.0  # the supervisor's period here (beat's CONNECTION_SUPERVISOR_SECONDS)
HOST_TTL = 2.0


class Host:
    """One `manage.py connection_host` process."""

    def __init__(self, name, log_dir, capacity, env):
        self.log_path = log_dir / f"host-{name}.log"
        full_env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings_worker",
            "DATABASE_URL": database_url(),
            "PYTHONUNBUFFERED": "1",
            "CONNECTION_HOSTS": "true",
            **env,
        }
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(  # noqa: S603
                [sys.executable, "manage.py", "connection_host", f"--capacity={capacity}"],
                cwd=BASE_DIR,
                env=full_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.id = None

    @property
    def pid(self):
        return self.process.pid

    def log(self):
        return self.log_path.read_text(errors="replace")

    def wait_up(self):
        def up():
            if self.process.poll() is not None:
                pytest.fail(f"host exited:\n{self.log()}")
            return next(
                (host for host in fleet.live_hosts() if host.endswith(f":{self.pid}")), None
            )

        self.id = wait_for(up, timeout=60, interval=0.1)

    def kill(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


class LiveWatch:
    """Samples the open fake connections every 50 ms; remembers any account open in two
    living processes at once."""

    def __init__(self, keys):
        self.client = redis.Redis.from_url(settings.REDIS_URL)
        self.keys = keys
        self.dead_pids: set[str] = set()
        self.held_twice: set[str] = set()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def now(self) -> dict[str, set[str]]:
        """account -> pids holding it, dead processes left out."""
        seen: dict[str, set[str]] = {}
        for key in self.keys:
            for member in self.client.smembers(key):
                pid, _, account = member.decode().partition(":")
                if pid not in self.dead_pids:
                    seen.setdefault(f"{key}:{account}", set()).add(pid)
        return seen

    def _run(self):
        while not self._stop.is_set():
            for account, pids in self.now().items():
                if len(pids) > 1:
                    self.held_twice.add(account)
            time.sleep(0.05)

    def stop(self):
        self._stop.set()
        self.thread.join(5)


@pytest.mark.timeout(300)
@pytest.mark.django_db(transaction=True)
def test_two_hosts_hold_everything_once_a_killed_host_moves_and_no_room_waits(
    tmp_path, monkeypatch, client, settings
):
    run = uuid.uuid4().hex[:8]
    tg_live = cache.make_key(f"fake-telegram-live:{run}")
    wa_live = cache.make_key(f"fake-whatsapp-live:{run}")
    redis_client = redis.Redis.from_url(settings.REDIS_URL)
    for name in (fleet.HOSTS, fleet.OWNERS, fleet.WAITING):
        redis_client.delete(cache.make_key(name))
    company = CompanyFactory()
    admin = UserFactory(company=company, role="admin")
    accounts = [
        TelegramAccountFactory(company=company, session_string=f"acct{i}") for i in range(6)
    ]
    numbers = [WhatsAppNumberFactory(company=company, provider="web") for _ in range(4)]
    for number in numbers:
        WhatsAppSession.objects.create(number=number, status=WhatsAppSession.Status.STARTING)
    env = {
        "TELEGRAM_CLIENT_FACTORY": "tests.telegram_fakes.FakeTelegramClient",
        "WHATSAPP_WEB_ADAPTER": "tests.whatsapp_fakes.FakeWebAdapter",
        "FAKE_WHATSAPP_MODE": "connect",
        "FAKE_WHATSAPP_LIVE_KEY": wa_live,
        "FAKE_TELEGRAM_LIVE_KEY": tg_live,
        "CONNECTION_HOST_TTL": str(HOST_TTL),
        # Short: the hosts must renew it (batched) while they hold; the takeover after the
        # kill comes from the dead host's missing heartbeat, well before a lease could lapse.
        "CONNECTION_LEASE_SECONDS": "6",
        "CONNECTION_HEARTBEAT_SECONDS": "0.5",
        "CONNECTION_SUPERVISOR_SECONDS": str(PERIOD),
        # Only beat's supervisor moves connections here (the dead host's rows are looked at
        # before anyone took them); hosts that react to a death at once: the next test.
        "CONNECTION_HOST_WATCH_PEERS": "false",
    }
    monkeypatch.setattr(settings, "CONNECTION_HOST_TTL", HOST_TTL)
    hosts = [Host(name, tmp_path, capacity=10, env=env) for name in ("a", "b")]
    watch = LiveWatch([tg_live, wa_live])
    try:
        for host in hosts:
            host.wait_up()

        # The supervisor assigns all ten: five to each host (balanced); every one connects.
        done = fleet.supervise()
        assert len(done["assigned"]) == 10 and done["waiting"] == []
        loads = [redis_client.scard(fleet.assigned_key(host.id)) for host in hosts]
        assert loads == [5, 5]
        wait_for(lambda: sum(len(v) for v in watch.now().values()) == 10, timeout=60)
        wait_for(
            lambda: (
                TelegramAccount.objects.filter(status="connected").count() == 6
                and WhatsAppSession.objects.filter(status="connected").count() == 4
            ),
            timeout=30,
        )
        # Held past several lease lifetimes: renewed, never lost.
        tokens = {a.pk: account_holder(a.pk) for a in accounts}
        time.sleep(14)
        assert {a.pk: account_holder(a.pk) for a in accounts} == tokens
        assert all("lease lost" not in host.log() for host in hosts)
        # Replies reach the holder through its host's doorbell (no BLPOP per listener).
        receipt = send_through_listener(accounts[0].pk, f"host-test:{run}:tg", "4242", "Hi")
        assert receipt.external_id.isdigit()
        receipt = send_through_session(numbers[0].pk, f"host-test:{run}:wa", "+4915112345", "Hi")
        assert receipt.external_id.startswith(f"wamid.web.{numbers[0].pk}.")
        # Supervising again moves nothing (sticky) and starts nothing twice.
        again = fleet.supervise()
        assert again["assigned"] == [] and again["kept"] == 10

        # kill -9 one host: its rows still say connected, but nobody shows that as the truth.
        victim, survivor = hosts
        victim_accounts = [
            a for a in accounts if (fleet.host_of(account_holder(a.pk)) or "") == victim.id
        ]
        assert victim_accounts
        victim.kill()
        watch.dead_pids.add(str(victim.pid))
        wait_for(lambda: not fleet.host_alive(victim.id), timeout=HOST_TTL * 3)
        account = TelegramAccount.objects.get(pk=victim_accounts[0].pk)
        assert account.status == "connected"  # the row names the dead host
        assert fleet.row_state(account)[0] == "reconnecting"
        client.force_login(admin)
        shown = client.get(f"/api/v1/telegram/accounts/{account.pk}/").json()
        assert shown["status"] == "connected" and shown["live_status"] == "reconnecting"

        # Within two supervisor periods every connection is held again, by the survivor.
        def all_on_survivor():
            holders = [account_holder(a.pk) for a in accounts] + [
                number_holder(n.pk) for n in numbers
            ]
            return all(fleet.host_of(token) == survivor.id for token in holders)

        periods = 0
        while periods < 2 and not all_on_survivor():
            fleet.supervise()
            periods += 1
            deadline = time.monotonic() + PERIOD
            while time.monotonic() < deadline and not all_on_survivor():
                time.sleep(0.1)
        assert all_on_survivor(), survivor.log()
        wait_for(lambda: sum(len(v) for v in watch.now().values()) == 10, timeout=10)
        wait_for(
            lambda: (
                TelegramAccount.objects.filter(status="connected").count() == 6
                and WhatsAppSession.objects.filter(status="connected").count() == 4
            ),
            timeout=10,
        )
        assert fleet.row_state(TelegramAccount.objects.get(pk=account.pk))[0] == "connected"

        # No room left: an eleventh account waits for capacity, and says so everywhere.
        extra = TelegramAccountFactory(company=company, session_string="acct-extra")
        done = fleet.supervise()
        assert done["waiting"] == [fleet.item("telegram:account", extra.pk)]
        shown = client.get(f"/api/v1/telegram/accounts/{extra.pk}/").json()
        assert shown["waiting_for_capacity"] is True and shown["live_status"] == "waiting"
        page = client.get("/settings/telegram/").content.decode()
        assert "Waiting for capacity" in page
        settings.METRICS_TOKEN = "fleet-test"  # required with DEBUG off
        metrics = client.get(
            "/metrics", headers={"Authorization": "Bearer fleet-test"}
        ).content.decode()
        assert "telegram_waiting_for_capacity 1.0" in metrics
        assert "telegram_active_connections 6.0" in metrics
        assert f'connection_host_capacity{{host="{survivor.id}"}} 10.0' in metrics
        assert account_holder(extra.pk) is None

        # SIGTERM drains: every lease released before the host exits.
        survivor.process.send_signal(signal.SIGTERM)
        assert survivor.process.wait(60) == 0, survivor.log()
        assert all(account_holder(a.pk) is None for a in accounts)
        assert all(number_holder(n.pk) is None for n in numbers)
        assert "draining" in survivor.log()
        assert watch.held_twice == set()
    finally:
        watch.stop()
        for host in hosts:
            host.kill()
        for key in (tg_live, wa_live):
            redis_client.delete(key)
        for name in (fleet.HOSTS, fleet.OWNERS, fleet.WAITING):
            redis_client.delete(cache.make_key(name))
        redis_client.close()


@pytest.mark.timeout(300)
@pytest.mark.django_db(transaction=True)
def test_a_new_host_gets_a_share_of_a_full_ones_connections_a_few_per_period_never_twice(
    tmp_path, settings
):
    """Sticky unless lopsided: a host that joins empty while another holds 8 of its 10 gets
    connections moved to it, at most CONNECTION_REBALANCE_MAX per supervisor run, until the
    shares differ by no more than CONNECTION_REBALANCE_THRESHOLD; then nothing moves."""
    run = uuid.uuid4().hex[:8]
    tg_live = cache.make_key(f"fake-telegram-live:{run}")
    redis_client = redis.Redis.from_url(settings.REDIS_URL)
    for name in (fleet.HOSTS, fleet.OWNERS, fleet.WAITING):
        redis_client.delete(cache.make_key(name))
    company = CompanyFactory()
    accounts = [
        TelegramAccountFactory(company=company, session_string=f"acct{i}") for i in range(8)
    ]
    env = {
        "TELEGRAM_CLIENT_FACTORY": "tests.telegram_fakes.FakeTelegramClient",
        "FAKE_TELEGRAM_LIVE_KEY": tg_live,
        "CONNECTION_HOST_TTL": str(HOST_TTL),
        "CONNECTION_LEASE_SECONDS": "6",
        "CONNECTION_HEARTBEAT_SECONDS": "0.5",
        "CONNECTION_SUPERVISOR_SECONDS": str(PERIOD),
    }
    settings.CONNECTION_HOST_TTL = HOST_TTL
    settings.CONNECTION_REBALANCE_THRESHOLD = 0.25
    settings.CONNECTION_REBALANCE_MAX = 2
    first = Host("a", tmp_path, capacity=10, env=env)
    hosts = [first]
    watch = LiveWatch([tg_live])

    def holders() -> dict[str, int]:
        counts: dict[str, int] = {}
        for account in accounts:
            host = fleet.host_of(account_holder(account.pk)) or ""
            counts[host] = counts.get(host, 0) + 1
        return counts

    try:
        first.wait_up()
        done = fleet.supervise()
        assert len(done["assigned"]) == 8, (done, first.log()[-3000:])
        wait_for(lambda: holders() == {first.id: 8}, timeout=60)
        wait_for(lambda: len(watch.now()) == 8, timeout=30)

        second = Host("b", tmp_path, capacity=10, env=env)
        hosts.append(second)
        second.wait_up()
        # 8/10 against 0/10: two move now (the bound per run) ...
        done = fleet.supervise()
        assert [(frm, to) for _entry, frm, to in done["moved"]] == [(first.id, second.id)] * 2
        assert done["assigned"] == [] and done["kept"] == 8
        wait_for(lambda: holders() == {first.id: 6, second.id: 2}, timeout=30)
        # ... one more at the next run (6/10 against 2/10 is still past the threshold) ...
        assert len(fleet.supervise()["moved"]) == 1
        wait_for(lambda: holders() == {first.id: 5, second.id: 3}, timeout=30)
        # ... and then it is sticky: 5/10 against 3/10 is within it.
        again = fleet.supervise()
        assert again["moved"] == [] and again["assigned"] == [] and again["kept"] == 8
        wait_for(lambda: len(watch.now()) == 8, timeout=30)
        wait_for(
            lambda: TelegramAccount.objects.filter(status="connected").count() == 8, timeout=30
        )
        assert sorted(redis_client.smembers(fleet.assigned_key(second.id))) == sorted(
            fleet.item("telegram:account", pk).encode()
            for pk in [a.pk for a in accounts]
            if fleet.host_of(account_holder(pk)) == second.id
        )
        assert "lease lost" not in first.log() + second.log()

        # kill -9 the fuller host: the other sees its heartbeat go and runs the supervisor
        # itself (nobody here calls it); it has room for all 8 and holds them, once.
        first.kill()
        watch.dead_pids.add(str(first.pid))
        wait_for(lambda: holders() == {second.id: 8}, timeout=60)
        wait_for(lambda: len(watch.now()) == 8, timeout=30)
        assert "gone; supervising now" in second.log()
        assert watch.held_twice == set()
    finally:
        watch.stop()
        for host in hosts:
            host.kill()
        redis_client.delete(tg_live)
        for name in (fleet.HOSTS, fleet.OWNERS, fleet.WAITING):
            redis_client.delete(cache.make_key(name))
        redis_client.close()
