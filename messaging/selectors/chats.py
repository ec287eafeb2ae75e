"""Reads for the inbox and team chat pages, scoped to the user's company."""

from collections import OrderedDict

from django.db.models import Count, Exists, OuterRef, Subquery

from accounts.scoping import get_scoped_or_404, scoped
from messaging.models import (
    ChatMember,
    ChatMessage,
    TeamChat,
)

from .inbox import MESSAGE_LIMIT


def _member_of(user):
    return Exists(ChatMember.objects.filter(chat=OuterRef("pk"), user=user))


def member_chats(user):
    """The team chats `user` belongs to, with member count and last message time.

    Subqueries, not joins: two counts over joined tables would multiply each other.
    """
    member_count = (
        ChatMember.objects.filter(chat=OuterRef("pk"))
        .order_by()
        .values("chat")
        .annotate(n=Count("id"))
        .values("n")
    )
    last_message = ChatMessage.objects.filter(chat=OuterRef("pk")).order_by("-created_at", "-id")
    return (
        scoped(TeamChat, user)
        .filter(_member_of(user))
        .annotate(
            member_count=Subquery(member_count),
            last_message_at=Subquery(last_message.values("created_at")[:1]),
        )
    )


def get_member_chat(user, pk) -> TeamChat:
    """A chat of the user's company that the user is a member of; anything else is a 404."""
    return get_scoped_or_404(TeamChat.objects.filter(_member_of(user)), user, pk=pk)


def chat_messages(chat, limit: int = MESSAGE_LIMIT) -> list:
    """The latest `limit` messages, oldest first, each with `reaction_summary`:
    [(emoji, count, "alice, bob"), ...] in the order the emojis were first used."""
    latest = (
        chat.messages.select_related("author")
        .prefetch_related("reactions__user")
        .order_by("-created_at", "-id")
    )
    messages = list(reversed(latest[:limit]))
    for message in messages:
        by_emoji = OrderedDict()
        for reaction in sorted(message.reactions.all(), key=lambda r: (r.created_at, r.pk)):
            by_emoji.setdefault(reaction.emoji, []).append(reaction.user.display_name)
        message.reaction_summary = [
            (emoji, len(names), ", ".join(names)) for emoji, names in by_emoji.items()
        ]
    return messages


def chat_members(chat):
    return [m.user for m in chat.memberships.select_related("user").order_by("user__username")]
