"""The one place realtime events leave the server.

Every event is `{"event": "<noun>.<verb>", "data": {...}}`, addressed to the groups
`company.<id>` and/or `user.<id>`, and sent only after the surrounding transaction commits,
so a browser never hears of a row that was rolled back.
"""

import logging
from functools import lru_cache

from django.conf import settings
from django.db import transaction
from django.utils import translation
from django.utils.functional import Promise, lazy

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


def all_conversations_group(company_id) -> str:
    """Sockets of people who see every conversation of the company (admins, supervisors,
    and agents unless the company restricts them to their own: see accounts.scoping)."""
    return f"company.{company_id}.conversations"


def conversation_groups(company_id, assignee_id) -> list[str]:
    """Who hears of a conversation: everyone while it is unassigned; once assigned, those
    who see every conversation and its assignee."""
    if assignee_id is None:
        return [company_group(company_id)]
    return [all_conversations_group(company_id), user_group(assignee_id)]


def presence_group(company_id) -> str:
    """Sockets that asked for the company's presence (`/ws/?presence=1`: the browser)."""
    return f"presence.{company_id}"


def publish(
    event: str, data: dict, *, company_id=None, user_ids=(), conversation=None, groups=()
) -> None:
    """`conversation` (anything with company_id and assignee_id): the event is about it, so
    only those who may see it hear it (instead of the whole `company_id`). `groups`: other
    groups by name (e.g. presence_group)."""
    extra = list(groups)
    if conversation is not None:
        groups = conversation_groups(conversation.company_id, conversation.assignee_id)
    else:
        groups = [company_group(company_id)] if company_id is not None else []
    groups += [user_group(user_id) for user_id in user_ids] + extra
    data, words = _words(data)
    payload = {"event": event, "data": data}
    if words:
        payload["words"] = words  # the hub gives each socket its language's (never sent on)
    transaction.on_commit(lambda: _send(groups, payload))


def _words(data: dict) -> tuple[dict, dict | None]:
    """Lazy words in `data` (a `status_label` from crm.vocabulary) become text in the default
    language; the texts in every language travel beside the payload, and the hub gives each
    socket its user's (so one event reads "Closed" to one agent and "Закрыт" to another)."""
    lazy = {key: value for key, value in data.items() if isinstance(value, Promise)}
    if not lazy:
        return data, None
    texts = {key: _in_every_language(value) for key, value in lazy.items()}
    words = {
        code: {key: text[code] for key, text in texts.items()} for code, _name in settings.LANGUAGES
    }
    return {**data, **words[settings.LANGUAGE_CODE]}, words


def _in_every_language(value: Promise) -> dict[str, str]:
    """{language: text} of one lazy word. The same few status words come with almost every
    event (every inbound message's), so each is translated once per process, not per event."""
    _unpickle, (function, args, kw, *_types) = value.__reduce__()
    try:
        return _translated(function, args, tuple(sorted(kw.items())))
    except TypeError:  # an argument that cannot be a cache key: translated now
        return _translate(value)


@lru_cache(maxsize=4096)
def _translated(function, args: tuple, kw: tuple) -> dict[str, str]:
    return _translate(_lazy_str(function)(*args, **dict(kw)))


@lru_cache(maxsize=64)
def _lazy_str(function):
    """lazy(function, str), made once per function: lazy() builds a class on every call (~40
    µs), and a notification's title (its client's name, its actor) is rarely the same twice."""
    return lazy(function, str)


def _translate(value: Promise) -> dict[str, str]:
    texts = {}
    for code, _name in settings.LANGUAGES:
        with translation.override(code):
            texts[code] = str(value)
    return texts


def _send(groups: list[str], payload: dict) -> None:
    try:
        realtime.publish_soon(groups, payload)  # the publisher thread sends it
    except Exception:  # a realtime hiccup must never fail the write that caused it
        logger.exception("realtime: publish failed event=%s", payload["event"])
        return
    logger.debug("realtime: handed over event=%s groups=%d", payload["event"], len(groups))


def publish_ephemeral(event: str, data: dict, *, conversation_id) -> None:
    """An ephemeral signal (nothing stored, so nothing to commit): "X is typing" / "X is
    viewing", to the sockets that have `conversation_id` open, through the same publisher;
    never to the sockets of the user it is about (data["user_id"]: their own pages ignore it,
    and in a storm of typing it was a quarter of the frames written)."""
    _send(
        [conversation_group(conversation_id)],
        {"event": event, "data": data, "except_user": data["user_id"]},  # the hub drops it
    )
