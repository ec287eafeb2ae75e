"""The one place realtime events leave the server.

Every event is `{"event": "<noun>.<verb>", "data": {...}}`, addressed to the groups
`company.<id>` and/or `user.<id>`, and sent only after the surrounding transaction commits,
so a browser never hears of a row that was rolled back.
"""

import logging

from django.db import transaction

from . import realtime

logger = logging.getLogger(__name__)


def user_group(user_id) -> str:
    return f"user.{user_id}"


def company_group(company_id) -> str:
    return f"company.{company_id}"


def conversation_group(conversation_id) -> str:
    """The sockets that have this conversation open (they joined it after a company check,
    messaging.consumers): ephemeral signals (typing, viewing) go there only."""
    return f"conversation.{conversation_id}"


def publish(event: str, data: dict, *, company_id=None, user_ids=()) -> None:
    groups = [company_group(company_id)] if company_id is not None else []
    groups += [user_group(user_id) for user_id in user_ids]
    payload = {"event": event, "data": data}
    transaction.on_commit(lambda: _send(groups, payload))


def _send(groups: list[str], payload: dict) -> None:
    try:
        realtime.publish_soon(groups, payload)  # the publisher thread sends it
    except Exception:  # a realtime hiccup must never fail the write that caused it
        logger.exception("realtime: publish failed event=%s", payload["event"])
        return
    logger.debug("realtime: handed over event=%s groups=%d", payload["event"], len(groups))


def publish_ephemeral(event: str, data: dict, *, conversation_id) -> None:
    """An ephemeral signal (nothing stored, so nothing to commit): "X is typing" / "X is
    viewing", to the sockets that have `conversation_id` open, through the same publisher."""
    _send([conversation_group(conversation_id)], {"event": event, "data": data})
