"""`manage.py connection_host`: one connection host (channels_integrations.hosting), holding
up to --capacity long-lived connections on one event loop until SIGTERM (then it drains)."""

import socket

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connections


class Command(BaseCommand):
    help = "Hold WhatsApp sessions, Telegram listeners and IMAP IDLE assigned to this host."

    def add_arguments(self, parser):
        parser.add_argument(
            "--capacity",
            type=int,
            default=None,
            help="connections this host may hold (default CONNECTION_HOST_CAPACITY)",
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help="exit 0 when a host of this machine has a live heartbeat (a health check)",
        )

    def handle(self, *args, capacity=None, check=False, **options):
        from channels_integrations import fleet
        from channels_integrations.hosting import run_host

        if check:
            mine = f"{fleet.HOST_PREFIX}{socket.gethostname()}:"
            if not any(host.startswith(mine) for host in fleet.live_hosts()):
                raise CommandError("no connection host of this machine has a live heartbeat")
            return

        # A few database threads serve every connection: keep their connections open.
        for alias in connections:
            connections.settings[alias]["CONN_MAX_AGE"] = settings.CONNECTION_HOST_CONN_MAX_AGE
        run_host(capacity)
