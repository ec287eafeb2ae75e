"""The customer-service window of a conversation: a channel with a `reply_window` (WhatsApp
Cloud: 24 hours) lets free text go out only while the client's last inbound message is younger
than it; after that, only a template. Computed from `Conversation.last_inbound_at`, the newest
inbound message's time, which the ingest statement moves forward with each message."""

from datetime import datetime

from django.db import connection
from django.utils import timezone

from messaging import channels
from messaging.channels import ReplyWindow
from messaging.models import Conversation

__all__ = ["reply_window", "reply_windows", "window_of"]


def window_of(length, last_inbound: datetime | None, now: datetime | None = None):
    """The window for a channel window `length` (None: no window) after `last_inbound`:
    open while now < last_inbound + length (at exactly `length` it is closed)."""
    if length is None:
        return None
    if last_inbound is None:
        return ReplyWindow(is_open=False, closes_at=None)
    closes_at = last_inbound + length
    return ReplyWindow(is_open=(now or timezone.now()) < closes_at, closes_at=closes_at)


def reply_window(conversation: Conversation, now: datetime | None = None) -> ReplyWindow | None:
    """The conversation's window, or None when its channel (or source) has none."""
    source = conversation.source
    if source is None:
        return None
    length = channels.get(conversation.platform).reply_window(source)
    if length is None:
        return None
    return window_of(length, conversation.last_inbound_at, now)


def reply_windows(rows: list[dict], now: datetime | None = None) -> dict:
    """{conversation id: window or None} for plain rows with id, platform, source_id and
    last_inbound_at (the inbox list); sources are loaded once per platform."""
    wanted: dict[str, set] = {}
    for row in rows:
        wanted.setdefault(row["platform"], set()).add(row["source_id"])
    lengths = {}
    for platform, ids in wanted.items():
        channel = channels.get(platform)
        if channel.capabilities.reply_window is None:
            continue  # no window on this channel, whatever the source
        for source in _sources(channel, ids):
            lengths[(platform, source.pk)] = channel.reply_window(source)
    now = now or timezone.now()
    return {
        row["id"]: window_of(
            lengths.get((row["platform"], row["source_id"])), row.get("last_inbound_at"), now
        )
        for row in rows
    }


def _sources(channel, ids) -> list:
    """The sources with these ids, with their id and `reply_window_fields` loaded. Plain SQL:
    the API list runs this on every request, and building the ORM's query cost more CPU than
    the query (bench/api_list_cpu.py)."""
    meta = channel.source_model._meta
    fields = [meta.pk, *(meta.get_field(name) for name in channel.reply_window_fields)]
    columns = ", ".join(f'"{field.column}"' for field in fields)
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT {columns} FROM "{meta.db_table}" WHERE "{meta.pk.column}" = ANY(%s)',  # noqa: S608
            [list(ids)],
        )
        rows = cursor.fetchall()
    attnames = [field.attname for field in fields]
    return [channel.source_model.from_db(connection.alias, attnames, row) for row in rows]
