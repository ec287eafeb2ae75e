"""Merging conversations of one source into one (a channel found that they are one thread,
e.g. an email that arrived after the replies that opened a conversation of their own).

The caller moves its own channel rows that point at the merged conversations first
(messaging never imports a channel's models); events leave after the commit."""

from django.db import transaction

from .. import events
from ..models import Attachment, Conversation, Message
from ..payloads import conversation_payload


def merge_conversations(target: Conversation, others) -> Conversation:
    """Move every message and attachment of `others` into `target` (history stays in the
    order of the messages' times), add up the unread counts, keep the newest last message,
    keep target's assignee and client (or take the first of the others'), and delete the
    others. Only conversations of the same company and source are merged."""
    others = [c for c in others if c.pk != target.pk]
    for other in others:
        if (other.company_id, other.platform, other.source_id) != (
            target.company_id,
            target.platform,
            target.source_id,
        ):
            raise ValueError("only conversations of one company and source can be merged")
    if not others:
        return target
    ids = [c.pk for c in others]
    with transaction.atomic():
        locked = list(
            Conversation.objects.select_for_update()
            .filter(pk__in=[target.pk, *ids], company_id=target.company_id)
            .order_by("pk")
        )
        by_id = {c.pk: c for c in locked}
        target = by_id[target.pk]
        merged = [by_id[pk] for pk in ids if pk in by_id]
        ids = [c.pk for c in merged]
        Message.objects.filter(conversation_id__in=ids).update(conversation_id=target.pk)
        Attachment.objects.filter(conversation_id__in=ids).update(conversation_id=target.pk)
        everyone = [target, *merged]
        newest = max(everyone, key=lambda c: (c.last_message_at, c.pk))
        target.last_message_at = newest.last_message_at
        target.last_message_preview = newest.last_message_preview
        inbound = [c.last_inbound_at for c in everyone if c.last_inbound_at]
        target.last_inbound_at = max(inbound) if inbound else None
        target.unread_count = sum(c.unread_count for c in everyone)
        if any(c.status == Conversation.Status.OPEN for c in everyone):
            target.status = Conversation.Status.OPEN
        target.assignee_id = target.assignee_id or next(
            (c.assignee_id for c in merged if c.assignee_id), None
        )
        target.client_id = target.client_id or next(
            (c.client_id for c in merged if c.client_id), None
        )
        target.subject = target.subject or next((c.subject for c in merged if c.subject), "")
        target.save(
            update_fields=[
                "last_message_at",
                "last_message_preview",
                "last_inbound_at",
                "unread_count",
                "status",
                "assignee",
                "client",
                "subject",
                "updated_at",
            ]
        )
        Conversation.objects.filter(pk__in=ids).delete()
        for pk in ids:
            events.publish(
                "conversation.merged",
                {"id": pk, "into": target.pk},
                company_id=target.company_id,
            )
        events.publish("conversation.updated", conversation_payload(target), conversation=target)
    return target
