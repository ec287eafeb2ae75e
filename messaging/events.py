"""The one place realtime events leave the server.

Every event is `{"event": "<noun>.<verb>", "data": {...}}`, published to the groups
`company.<id>` and/or `user.<id>` and only after the surrounding transaction commits, so a
browser never hears of a row that was rolled back.
"""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from .consumers import company_group, user_group

logger = logging.getLogger(__name__)


def publish(event: str, data: dict, *, company_id=None, user_ids=()) -> None:
    groups = [company_group(company_id)] if company_id is not None else []
    groups += [user_group(user_id) for user_id in user_ids]
    payload = {"event": event, "data": data}
    transaction.on_commit(lambda: _send(groups, payload))


def _send(groups: list[str], payload: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    for group in groups:
        try:
            async_to_sync(layer.group_send)(group, {"type": "realtime.event", "payload": payload})
        except Exception:  # a realtime hiccup must never fail the write that caused it
            logger.exception("realtime: publish failed event=%s group=%s", payload["event"], group)
    logger.debug("realtime: published event=%s groups=%d", payload["event"], len(groups))
