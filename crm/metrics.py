"""/metrics in Prometheus' text format (prometheus-client). Counters come from Redis, where
every process (web and workers) counts, so one scrape of any web process sees them all."""

import hmac

from django.conf import settings
from django.db.models import Count
from django.http import HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


class WhatsAppCollector:
    def collect(self):
        from channels_integrations.models import WhatsAppSession
        from channels_integrations.whatsapp import metrics

        counters = metrics.counters()
        for name in metrics.COUNTERS:
            yield CounterMetricFamily(
                f"switchboard_whatsapp_{name}",
                f"WhatsApp {name.replace('_', ' ')}, every process since Redis started",
                value=counters[name],
            )
        by_status = GaugeMetricFamily(
            "switchboard_whatsapp_sessions",
            "WhatsApp sessions by status",
            labels=["status"],
        )
        rows = WhatsAppSession.objects.values("status").annotate(count=Count("id"))
        seen = {row["status"]: row["count"] for row in rows}
        for status in WhatsAppSession.Status.values:
            by_status.add_metric([status], seen.get(status, 0))
        yield by_status


class WebhookInboxCollector:
    def collect(self):
        from webhook_inbox.services import backlog

        figures = backlog()
        yield GaugeMetricFamily(
            "switchboard_webhook_inbox_waiting",
            "Webhook deliveries stored and not ingested yet",
            value=figures["waiting"],
        )
        yield GaugeMetricFamily(
            "switchboard_webhook_inbox_parked",
            "Webhook deliveries given up on after repeated failures (see the admin)",
            value=figures["parked"],
        )
        yield GaugeMetricFamily(
            "switchboard_webhook_inbox_oldest_age_seconds",
            "Age of the oldest waiting webhook delivery",
            value=figures["oldest_age_seconds"],
        )


class FleetCollector:
    """The names operators' dashboards query (<channel>_sessions_total,
    <channel>_active_connections, <channel>_messages_sent_total, ..._received_total,
    ..._errors_total, <channel>_reconnect_attempts, <channel>_waiting_for_capacity) for
    whatsapp, telegram and email, and each connection host's capacity and load."""

    def collect(self):
        from channels_integrations import channel_metrics, fleet
        from channels_integrations.whatsapp import metrics as wa_metrics

        hosts = fleet.live_hosts()
        waiting = fleet.waiting_counts()
        rows = _connection_rows()
        for kind in fleet.KINDS.values():
            channel = kind.channel
            counts = channel_metrics.counters(channel)
            if channel == "whatsapp":
                counts |= {
                    name: value
                    for name, value in wa_metrics.counters().items()
                    if name in ("messages_sent", "messages_received", "errors")
                }
            entries = rows[kind.name]
            active = sum(1 for connected, token in entries if connected and _live(token, hosts))
            yield GaugeMetricFamily(
                f"{channel}_sessions_total",
                f"{channel} connections configured to be live",
                value=len(entries),
            )
            yield GaugeMetricFamily(
                f"{channel}_active_connections",
                f"{channel} connections held by a live holder and connected",
                value=active,
            )
            for name in ("messages_sent", "messages_received", "errors"):
                yield CounterMetricFamily(
                    f"{channel}_{name}",
                    f"{channel} {name.replace('_', ' ')}, every process since Redis started",
                    value=counts[name],
                )
            yield GaugeMetricFamily(
                f"{channel}_reconnect_attempts",
                f"{channel} reconnect attempts, every process since Redis started",
                value=counts["reconnect_attempts"],
            )
            yield GaugeMetricFamily(
                f"{channel}_waiting_for_capacity",
                f"{channel} connections no connection host has room for",
                value=waiting[kind.name],
            )
        capacity = GaugeMetricFamily(
            "connection_host_capacity", "connections a host may hold", labels=["host"]
        )
        load = GaugeMetricFamily(
            "connection_host_load", "connections a host holds", labels=["host"]
        )
        draining = GaugeMetricFamily(
            "connection_host_draining", "1 while a host drains", labels=["host"]
        )
        for host, info in hosts.items():
            capacity.add_metric([host], info.get("capacity", 0))
            load.add_metric([host], info.get("load", 0))
            draining.add_metric([host], 1 if info.get("draining") else 0)
        yield capacity
        yield load
        yield draining
        yield GaugeMetricFamily(
            "connection_hosts_up", "connection hosts with a live heartbeat", value=len(hosts)
        )
        total = GaugeMetricFamily(
            "connections_waiting_for_capacity",
            "wanted connections no host has room for",
            labels=["kind"],
        )
        for name, count in waiting.items():
            total.add_metric([name], count)
        yield total


def _connection_rows() -> dict[str, list[tuple[bool, str]]]:
    """(connected, holder token) of every wanted connection, by kind."""
    from channels_integrations import fleet
    from channels_integrations.connections import lease_name
    from channels_integrations.models import EmailAccount, TelegramAccount, WhatsAppSession
    from crm import coordination

    wa = WhatsAppSession.objects.filter(
        number__provider="web", status__in=WhatsAppSession.WANTED
    ).values_list("status", "holder")
    tg = TelegramAccount.objects.filter(
        is_active=True, status__in=TelegramAccount.WANTED
    ).values_list("status", "holder")
    idle = list(
        EmailAccount.objects.filter(is_active=True, use_idle=True).values_list("pk", flat=True)
    )
    tokens = []
    if idle:
        raw = coordination.redis_client().mget(
            [coordination.key(lease_name("email:idle", pk)) for pk in idle]
        )
        tokens = [value.decode() if value else "" for value in raw]
    return {
        "whatsapp:session": [(status == "connected", holder) for status, holder in wa],
        "telegram:account": [(status == "connected", holder) for status, holder in tg],
        "email:idle": [(bool(token), token) for token in tokens],
    } | {
        name: []
        for name in fleet.KINDS
        if name not in ("whatsapp:session", "telegram:account", "email:idle")
    }


def _live(token: str, hosts: dict) -> bool:
    """A holder is live when its host beats; a Celery worker's token (no host) counts as live
    while it is written (its lease keeps the row)."""
    from channels_integrations import fleet

    host = fleet.host_of(token)
    if not host:
        return False
    return host in hosts or not fleet.is_host(host)


def prometheus_metrics(request):
    """With DEBUG off the token is required: without METRICS_TOKEN set, nothing is served."""
    token = settings.METRICS_TOKEN
    if token or not settings.DEBUG:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        # bytes: any header; an empty token never matches
        if not token or not hmac.compare_digest(given.encode(), token.encode()):
            return HttpResponse(
                "Unauthorized: send Authorization: Bearer <METRICS_TOKEN>\n",
                status=401,
                content_type="text/plain",
                headers={"WWW-Authenticate": "Bearer"},
            )
    registry = CollectorRegistry()
    registry.register(WhatsAppCollector())
    registry.register(WebhookInboxCollector())
    registry.register(FleetCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
