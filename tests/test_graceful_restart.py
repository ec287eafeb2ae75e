"""Restarts nobody notices: a web process (uvicorn, as deploy/systemd/switchboard-web@.service
runs it) told SIGTERM stops accepting, answers the request it is in the middle of, and exits.

The request is held in flight for real: the test holds a PostgreSQL lock on the webhook inbox's
table, so the webhook's INSERT waits inside the server until the test lets it go."""

import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest

from webhook_inbox.models import Delivery

from .factories import WhatsAppNumberFactory
from .processes import database_url, free_port

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET = "drain-app-secret"


def _uvicorn() -> str:
    return str(Path(sys.executable).with_name("uvicorn"))


def _wait_for(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def _accepts(port) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.mark.django_db(transaction=True)
def test_sigterm_answers_the_request_in_flight_then_exits(company, tmp_path):
    number = WhatsAppNumberFactory(company=company, provider="cloud", cloud_app_secret=SECRET)
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "tests.settings"),
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": "memory://",
        "DB_POOL_MAX_SIZE": "4",
    }
    log = open(tmp_path / "uvicorn.log", "wb")  # noqa: SIM115
    server = subprocess.Popen(
        [_uvicorn(), "crm.asgi:application", "--host", "127.0.0.1", "--port", str(port),
         "--lifespan", "off", "--timeout-graceful-shutdown", "25"],
        cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    answer = {}
    try:
        _wait_for(lambda: _accepts(port), what="uvicorn to listen")
        raw = json.dumps({"object": "whatsapp_business_account", "entry": []}).encode()
        signature = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()

        def post():
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/webhooks/whatsapp/{number.uuid}/",
                data=raw,
                headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature},
            )
            with urllib.request.urlopen(request, timeout=60) as response:
                answer["status"], answer["body"] = response.status, response.read()

        with psycopg.connect(database_url()) as holder:
            holder.execute("LOCK TABLE webhook_inbox_delivery IN EXCLUSIVE MODE")
            client = threading.Thread(target=post)
            client.start()

            def insert_waits():
                holder.execute("SELECT pg_stat_clear_snapshot()")  # fresh view in a transaction
                row = holder.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND query LIKE 'INSERT INTO webhook_inbox_delivery%%'"
                ).fetchone()
                return row[0] > 0

            _wait_for(insert_waits, what="the webhook's INSERT to wait on the lock")
            server.send_signal(signal.SIGTERM)
            # It stops accepting at once, while the request is still in flight.
            _wait_for(lambda: not _accepts(port), what="the listening socket to close")
            assert server.poll() is None and "status" not in answer
            holder.rollback()  # the lock goes: the request finishes
        client.join(60)
        assert answer["status"] == 200 and json.loads(answer["body"]) == {"accepted": True}
        # It exits by itself (uvicorn re-raises the SIGTERM after its drain; systemd counts
        # that as a clean stop).
        assert server.wait(30) in (0, -signal.SIGTERM)
        assert Delivery.objects.filter(source_id=number.pk).count() == 1
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
        log.close()


@pytest.mark.django_db(transaction=True)
def test_the_cloud_webhook_fast_path_stores_and_hands_the_rest_to_django(company, tmp_path):
    """Through the server as deployed (uvicorn, crm.asgi): a signed delivery is stored by the
    fast path; a bad signature, an unknown number and a turned-off number get Django's
    answers (403 / 404 / 200 ignored) and nothing is stored."""
    from webhook_inbox import services

    number = WhatsAppNumberFactory(company=company, provider="cloud", cloud_app_secret=SECRET)
    off = WhatsAppNumberFactory(
        company=company, provider="cloud", cloud_app_secret=SECRET, is_active=False
    )
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "tests.settings"),
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": "memory://",
    }
    with open(tmp_path / "uvicorn.log", "wb") as log:
        server = subprocess.Popen(
            [_uvicorn(), "crm.asgi:application", "--host", "127.0.0.1", "--port", str(port),
             "--lifespan", "off"],
            cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _wait_for(lambda: _accepts(port), what="uvicorn to listen")
        raw = json.dumps({"object": "whatsapp_business_account", "entry": []}).encode()
        good = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()

        def post(target_uuid, signature):
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/webhooks/whatsapp/{target_uuid}/",
                data=raw,
                headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature},
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    return response.status, json.loads(response.read())
            except urllib.error.HTTPError as error:
                return error.code, None

        assert post(number.uuid, good) == (200, {"accepted": True})
        assert post(number.uuid, "sha256=" + "0" * 64)[0] == 403
        assert post("00000000-0000-0000-0000-000000000000", good)[0] == 404
        assert post(off.uuid, good) == (200, {"stored": 0, "ignored": True})
        assert list(Delivery.objects.values_list("source_id", flat=True)) == [number.pk]
        assert bytes(Delivery.objects.get().body) == raw
        assert services.drain()["deliveries"] == 1
    finally:
        server.terminate()
        server.wait(30)


@pytest.mark.django_db(transaction=True)
def test_daphne_tells_its_sockets_to_reconnect_when_it_stops(company, tmp_path):
    """SIGTERM to daphne: it stops listening, closes each WebSocket with 4012 (our "service
    restart": daphne cannot send 1012; realtime.js reconnects within 0.2-3 s) and exits."""
    from websockets.sync.client import connect

    from accounts.models import ApiToken

    from .factories import UserFactory
    from .live import LiveServer

    user = UserFactory(company=company)
    _, raw_token = ApiToken.issue(user, "restart test")
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "tests.settings"),
        "DATABASE_URL": database_url(),
        "DEBUG": "true",
        "CELERY_BROKER_URL": "memory://",
    }
    daphne = LiveServer(f"http://127.0.0.1:{port}", port, env, tmp_path / "daphne.log")
    daphne.start()
    try:
        with connect(f"ws://127.0.0.1:{port}/ws/?token={raw_token}", open_timeout=20) as ws:
            assert json.loads(ws.recv(timeout=20))["event"] == "welcome"
            daphne.process.send_signal(signal.SIGTERM)
            with pytest.raises(Exception):  # noqa: B017 (the close, whatever it is called)
                while True:
                    ws.recv(timeout=20)
            assert ws.close_code == 4012, (ws.close_code, daphne.log())
        assert daphne.process.wait(30) is not None
        assert not _accepts(port)
    finally:
        daphne.stop()
