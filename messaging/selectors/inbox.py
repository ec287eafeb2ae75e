"""Reads for the inbox and team chat pages, scoped to the user's company."""

from accounts.scoping import get_scoped_or_404, scoped
from crm.fields import secret_field_names
from messaging.models import (
    SOURCE_FIELD_BY_PLATFORM,
    Conversation,
    Platform,
)

MESSAGE_LIMIT = 200  # the read-only pages show the latest messages only


def inbox_conversations(user, *, platform: str = "", status: str = ""):
    """Newest first; unknown filter values are ignored rather than matching nothing."""
    conversations = scoped(Conversation, user).select_related("client", "assignee")
    if platform in Platform.values:
        conversations = conversations.filter(platform=platform)
    if status in Conversation.Status.values:
        conversations = conversations.filter(status=status)
    return conversations


def get_conversation(user, pk) -> Conversation:
    """One conversation with its client, assignee and source account (secrets not loaded)."""
    sources = SOURCE_FIELD_BY_PLATFORM.values()
    secret_fields = [
        f"{field}__{secret}"
        for field in sources
        for secret in secret_field_names(Conversation._meta.get_field(field).related_model)
    ]
    queryset = Conversation.objects.select_related("client", "assignee", *sources).defer(
        *secret_fields
    )
    return get_scoped_or_404(queryset, user, pk=pk)


def conversation_messages(conversation, limit: int = MESSAGE_LIMIT) -> list:
    """The latest `limit` messages, oldest first."""
    latest = conversation.messages.select_related("author", "bot").order_by("-created_at", "-id")
    return list(reversed(latest[:limit]))
