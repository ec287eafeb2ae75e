"""The JSON shapes of inbox rows, shared by realtime events and the API."""

from .models import Conversation, Message


def _iso(value):
    return value.isoformat() if value else None


def message_payload(message: Message) -> dict:
    return {
        "id": message.pk,
        "conversation_id": message.conversation_id,
        "direction": message.direction,
        "status": message.status,
        "body": message.body,
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
    }


def conversation_payload(conversation: Conversation) -> dict:
    return {
        "id": conversation.pk,
        "platform": conversation.platform,
        "client_id": conversation.client_id,
        "assignee_id": conversation.assignee_id,
        "status": conversation.status,
        "subject": conversation.subject,
        "last_message_at": _iso(conversation.last_message_at),
        "last_message_preview": conversation.last_message_preview,
        "unread_count": conversation.unread_count,
    }
