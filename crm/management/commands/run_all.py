"""`make run`: start every process of the Procfile (honcho), wait until the web answers
/health and the workers answer a ping, then print the URL and the demo logins last, so they
stay on screen (the logs are quiet by default). Ctrl-C stops everything."""

import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.management.commands.seed_demo import banner, read_logins

READY_TIMEOUT = 120.0


def _honcho() -> str:
    beside = Path(sys.executable).with_name("honcho")
    return str(beside) if beside.exists() else (shutil.which("honcho") or "honcho")


def _web_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "health", timeout=2) as response:  # noqa: S310
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _workers_answer() -> bool:
    """The sending worker answers a ping, and the connection host beats (Procfile
    `connections`; with CONNECTION_HOSTS off it is a second Celery worker)."""
    from crm.celery import app

    try:
        pings = len(app.control.ping(timeout=1.0) or [])
        if not settings.CONNECTION_HOSTS:
            return pings >= 2
        from channels_integrations.fleet import live_hosts

        return pings >= 1 and bool(live_hosts())
    except Exception:  # broker or Redis not there yet: not ready
        return False


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000/")

    def handle(self, *args, url, **options):
        url = url if url.endswith("/") else url + "/"
        honcho = subprocess.Popen([_honcho(), "start"], cwd=settings.BASE_DIR)  # noqa: S603
        stop = {"asked": False}

        def forward(signum, _frame):
            stop["asked"] = True
            if honcho.poll() is None:
                honcho.send_signal(signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        deadline = time.monotonic() + READY_TIMEOUT
        web_up = False
        while honcho.poll() is None and not stop["asked"] and time.monotonic() < deadline:
            web_up = web_up or _web_answers(url)
            if web_up and _workers_answer():
                break
            time.sleep(0.5)
        if honcho.poll() is None and not stop["asked"]:
            if not web_up:
                self.stderr.write(f"The web did not answer {url}health in {READY_TIMEOUT:.0f} s.")
            self.stdout.write(self.style.SUCCESS(banner(url, read_logins())))
            self.stdout.flush()
        code = honcho.wait()
        if code not in (0, -signal.SIGINT, -signal.SIGTERM) and not stop["asked"]:
            raise CommandError(f"honcho exited with {code}")
