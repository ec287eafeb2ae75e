"""Reads of the sandbox for its customer page."""

from messaging.models import Conversation

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
