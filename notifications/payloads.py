"""The JSON shape of a notification, shared by the realtime event and the API."""

from django.utils.functional import lazy


def notification_payload(notification, *, actor_name: str | None = None, unread_count=None):
    from .models import title_for

    if actor_name is None:
        actor = notification.actor if notification.actor_id else None
        actor_name = actor.display_name if actor else ""
    data = {
        "id": notification.pk,
        "kind": notification.kind,
        # Lazy: the event gives each recipient the title in their own language.
        "title": lazy(title_for, str)(notification.kind, notification.subject, actor_name),
        "body": notification.body,
        "url": notification.url,
        "conversation_id": notification.conversation_id,
        "read": notification.read_at is not None,
        "created_at": notification.created_at.isoformat() if notification.created_at else None,
    }
    if unread_count is not None:
        data["unread_count"] = unread_count
    return data
