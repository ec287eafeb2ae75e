"""Reads of the sandbox for its customer page."""

from messaging.models import Conversation

from ..models import BotRule, Broadcast, BroadcastRecipient
from ..whatsapp import broadcasts
from .models import SandboxInbox


def customer_threads(sandbox: SandboxInbox):
    """The sandbox's conversations, newest first, with their clients."""
    return (
        Conversation.objects.of_source(sandbox)
        .select_related("client")
        .order_by("-last_message_at")[:50]
    )


def thread_messages(sandbox: SandboxInbox, thread_id: str):
    """The messages of one customer's thread, oldest first (the last 100)."""
    conversation = (
        Conversation.objects.of_source(sandbox).filter(external_thread_id=thread_id).first()
    )
    if conversation is None:
        return None, []
    messages = list(conversation.messages.order_by("-created_at", "-pk")[:100])
    messages.reverse()
    return conversation, messages


def bot_rules(sandbox: SandboxInbox):
    """The rules of the sandbox's active bots, in the order they are tried."""
    return (
        BotRule.objects.filter(bot__sandbox=sandbox, bot__is_active=True, is_active=True)
        .select_related("bot")
        .order_by("bot_id", "position", "pk")
    )


def recent_broadcasts(sandbox: SandboxInbox, limit: int = 5):
    """The sandbox's latest broadcasts with their counts by outcome."""
    return broadcasts.with_counts(
        Broadcast.objects.filter(sandbox=sandbox).order_by("-created_at", "-pk")
    )[:limit]


def customer_broadcasts(sandbox: SandboxInbox, conversation):
    """What the sandbox's broadcasts sent this customer (their client), oldest first."""
    if conversation is None or not conversation.client_id:
        return []
    return list(
        BroadcastRecipient.objects.filter(
            broadcast__sandbox=sandbox, client_id=conversation.client_id
        )
        .select_related("broadcast")
        .order_by("pk")[:50]
    )


def is_broadcast_recipient(sandbox: SandboxInbox, recipient_id: int) -> bool:
    return BroadcastRecipient.objects.filter(pk=recipient_id, broadcast__sandbox=sandbox).exists()
