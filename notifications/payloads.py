"""The JSON shape of a notification, shared by the realtime event and the API."""

from django.utils.functional import lazy


def body_words(kind: str, body: str) -> str:
    """What a person reads as a notification's body: a connection's error explained (crm's
    error words, in the active language), anything else as written."""
    from crm.templatetags.error_tags import explain

    from .models import ADMIN_KINDS

    return explain(body)[0] if body and kind in ADMIN_KINDS else body


def _title(kind: str, subject: str, actor_name: str) -> str:
    from .models import title_for

    return title_for(kind, subject, actor_name)


# Made once: lazy() builds a class on every call (~40 µs, twice per notification).
_lazy_title = lazy(_title, str)
_lazy_body = lazy(body_words, str)


def notification_payload(notification, *, actor_name: str | None = None, unread_count=None):
    if actor_name is None:
        actor = notification.actor if notification.actor_id else None
        actor_name = actor.display_name if actor else ""
    data = {
        "id": notification.pk,
        "kind": notification.kind,
        # Lazy: the event gives each recipient the title in their own language.
        "title": _lazy_title(notification.kind, notification.subject, actor_name),
        # Lazy too: a connection's stored error becomes a sentence in the reader's language.
        "body": _lazy_body(notification.kind, notification.body),
        "url": notification.url,
        "conversation_id": notification.conversation_id,
        "read": notification.read_at is not None,
        "created_at": notification.created_at.isoformat() if notification.created_at else None,
    }
    if unread_count is not None:
        data["unread_count"] = unread_count
    return data
