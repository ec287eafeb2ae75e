"""Reads for the team chat pages and API, scoped to the user's company.

Tenant rule: another company's chat is a 404, like a missing one. Inside the company, the API
answers a non-member with 403 (it reads `get_company_chat(...).is_member`); the pages answer
404 (`get_member_chat`).
"""

from django.contrib.auth import get_user_model
from django.db.models import Count, Exists, OuterRef, Prefetch, Subquery

from accounts.scoping import get_scoped_or_404, scoped
from messaging.models import (
    ChatMember,
    ChatMessage,
    Reaction,
    TeamChat,
)
from messaging.payloads import reactions_payload

from .inbox import MESSAGE_LIMIT


def _member_of(user):
    return Exists(ChatMember.objects.filter(chat=OuterRef("pk"), user=user))


def _with_members(queryset):
    """Prefetch each chat's members (one query for any number of chats)."""
    return queryset.prefetch_related(
        Prefetch(
            "memberships",
            queryset=ChatMember.objects.select_related("user").order_by("user__username"),
        )
    )


def _with_reactions(queryset):
    """Prefetch each message's reactions with their users (one query for any number)."""
    return queryset.prefetch_related(
        Prefetch(
            "reactions",
            queryset=Reaction.objects.select_related("user").order_by("created_at", "id"),
        )
    )


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


def api_member_chats(user):
    """member_chats with the members loaded: a page of any size costs two queries."""
    return _with_members(member_chats(user))


def chats_with_membership(user, *, members: bool = False):
    """The company's chats (others' are absent), each with `is_member` for `user` (and its
    members loaded if asked). For detail reads and writes; the caller checks `is_member`."""
    chats = scoped(TeamChat, user).annotate(is_member=_member_of(user))
    return _with_members(chats) if members else chats


def get_member_chat(user, pk) -> TeamChat:
    """A chat of the user's company that the user is a member of; anything else is a 404."""
    return get_scoped_or_404(TeamChat.objects.filter(_member_of(user)), user, pk=pk)


def get_company_chat(user, pk, *, members: bool = False) -> TeamChat:
    """A chat of the user's company (another company's, or none, is a 404) with `is_member`
    telling whether `user` is in it."""
    return get_scoped_or_404(chats_with_membership(user, members=members), user, pk=pk)


def chat_message_list(chat):
    """A chat's messages with author and reactions loaded (constant queries per page)."""
    return _with_reactions(ChatMessage.objects.filter(chat=chat).select_related("author"))


def chat_messages(chat, limit: int = MESSAGE_LIMIT) -> list:
    """The latest `limit` messages, oldest first, each with `reaction_summary`:
    [{"emoji", "count", "user_ids", "names"}, ...] in the order the emojis were first used."""
    latest = chat_message_list(chat).order_by("-created_at", "-id")
    messages = list(reversed(latest[:limit]))
    for message in messages:
        message.reaction_summary = reactions_payload(message.reactions.all())
    return messages


def chat_members(chat):
    return [m.user for m in chat.memberships.select_related("user").order_by("user__username")]


def chat_counts(chat) -> dict:
    """What goes with the chat when it is deleted (shown before the user confirms)."""
    return {
        "members": ChatMember.objects.filter(chat=chat).count(),
        "messages": ChatMessage.objects.filter(chat=chat).count(),
        "reactions": Reaction.objects.filter(message__chat=chat).count(),
    }


def company_colleagues(user):
    """The active people of the user's company other than the user (chat member choices)."""
    return (
        scoped(get_user_model(), user)
        .filter(is_active=True)
        .exclude(pk=user.pk)
        .order_by("first_name", "last_name", "username")
    )
