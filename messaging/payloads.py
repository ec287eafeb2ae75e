"""The JSON shapes of inbox rows, shared by realtime events and the API."""

from crm.vocabulary import status_label

from .models import Conversation, Message


def _iso(value):
    return value.isoformat() if value else None


def message_payload(message: Message) -> dict:
    return {
        "id": message.pk,
        "conversation_id": message.conversation_id,
        "direction": message.direction,
        "status": message.status,
        "status_label": status_label(message),  # lazy: each reader's language
        "body": "" if message.metadata.get("deleted") else message.body,
        "sender_name": message.sender_name,
        "sender_address": message.sender_address,
        "author_id": message.author_id,
        "bot_id": message.bot_id,
        "external_id": message.external_id,
        "error": message.error,
        "created_at": _iso(message.created_at),
        "sent_at": _iso(message.sent_at),
        "delivered_at": _iso(message.delivered_at),
        "read_at": _iso(message.read_at),
        "edited_at": message.metadata.get("edited_at"),
        "deleted": bool(message.metadata.get("deleted")),
        "flags": message.metadata.get("flags", []),
    }


def conversation_payload(conversation: Conversation) -> dict:
    return {
        "id": conversation.pk,
        "platform": conversation.platform,
        "client_id": conversation.client_id,
        "assignee_id": conversation.assignee_id,
        "status": conversation.status,
        "status_label": status_label(conversation),  # lazy: each reader's language
        "snoozed_until": _iso(conversation.snoozed_until),
        "subject": conversation.subject,
        "last_message_at": _iso(conversation.last_message_at),
        "last_message_preview": conversation.last_message_preview,
        "unread_count": conversation.unread_count,
    }


# ---------------------------------------------------------------- team chats
# The same shapes serve the REST API (messaging/api/chats.py) and the realtime events, so a
# page can render an event exactly like a row it fetched.


def person_payload(user) -> dict:
    return {"id": user.pk, "name": user.display_name}


def reactions_payload(reactions) -> list[dict]:
    """One entry per emoji, in the order each emoji was first used:
    [{"emoji", "count", "user_ids", "names"}]. `reactions` carry their `user` loaded."""
    by_emoji: dict[str, dict] = {}
    for reaction in sorted(reactions, key=lambda r: (r.created_at, r.pk)):
        entry = by_emoji.setdefault(
            reaction.emoji, {"emoji": reaction.emoji, "count": 0, "user_ids": [], "names": []}
        )
        entry["count"] += 1
        entry["user_ids"].append(reaction.user_id)
        entry["names"].append(reaction.user.display_name)
    return list(by_emoji.values())


def chat_payload(chat, members) -> dict:
    """`members`: the chat's users, in the order to show them."""
    return {
        "id": chat.pk,
        "name": chat.name,
        "created_by_id": chat.created_by_id,
        "members": [person_payload(user) for user in members],
        "member_count": len(members),
        "created_at": _iso(chat.created_at),
        "updated_at": _iso(chat.updated_at),
    }


def chat_message_payload(message, reactions=()) -> dict:
    """`message.author` is read when set; `reactions` as for reactions_payload."""
    return {
        "id": message.pk,
        "chat_id": message.chat_id,
        "author": person_payload(message.author) if message.author_id else None,
        "body": message.body,
        "created_at": _iso(message.created_at),
        "edited_at": _iso(message.edited_at),
        "reactions": reactions_payload(reactions),
    }


def reaction_event_payload(message, user_id: int, emoji: str, reactions) -> dict:
    """`reaction.added` / `reaction.removed`: who changed which emoji, and the message's
    reactions after the change (a page re-renders them rather than counting deltas)."""
    return {
        "chat_id": message.chat_id,
        "message_id": message.pk,
        "user_id": user_id,
        "emoji": emoji,
        "reactions": reactions_payload(reactions),
    }
