"""Reads for the inbox and team chat pages, scoped to the user's company."""

import re

from django.db.models import OuterRef, Prefetch, Q, QuerySet, Subquery
from django.http import Http404

from accounts.models import User
from accounts.scoping import get_scoped_or_404, scoped
from crm.models import Client
from messaging import channels
from messaging.models import Conversation, Message, MessageReaction

MESSAGE_LIMIT = 200  # the read-only pages show the latest messages only
MESSAGES_PER_PAGE = 50  # the conversation view loads history upward, this many at a time
ASSIGNED_FILTERS = ("mine", "unassigned")  # "" (or anything else) means everyone's


def inbox_conversations(
    user,
    *,
    platform: str = "",
    status: str = "",
    assigned: str = "",
    unread: bool = False,
    query: str = "",
    label: int | str | None = None,
    last_status: bool = True,
    rows: QuerySet | None = None,
):
    """Newest first; unknown filter values are ignored rather than matching nothing.

    `assigned`: "mine" or "unassigned"; `unread`: only conversations with unread messages;
    `query`: the client's name, phone or email, or the subject, contains it, or a message's
    text matches it (full-text, inbox_search.fts); `label`: a label id of the user's company
    (another company's matches nothing); `last_status`: annotate `last_message_status` (the
    page shows it; the API list does not, and building it costs CPU on every request);
    `rows`: the conversations to filter (default: with client and assignee joined; the API
    list passes its `values()` rows, resolved once per process).
    """
    conversations = scoped(conversation_with_client() if rows is None else rows, user)
    if last_status:
        # The status of the last message: a failed one (a bot's greeting that could not go
        # out) is marked on the row instead of showing as if it had been sent.
        conversations = conversations.annotate(
            last_message_status=Subquery(
                Message.objects.filter(conversation_id=OuterRef("pk"))
                .order_by("-created_at", "-pk")
                .values("status")[:1]
            )
        )
    if platform in dict(channels.platform_choices()):
        conversations = conversations.filter(platform=platform)
    if status in Conversation.Status.values:
        conversations = conversations.filter(status=status)
    if assigned == "mine":
        conversations = conversations.filter(assignee=user)
    elif assigned == "unassigned":
        conversations = conversations.filter(assignee__isnull=True)
    if unread:
        conversations = conversations.filter(unread_count__gt=0)
    if label not in (None, ""):
        from triage.filters import labelled  # labels live in their own app

        # A label of another company (or none) matches nothing: never applied across.
        label_id = int(label) if str(label).isdigit() else 0
        conversations = conversations.filter(labelled(label_id, user.company_id))
    query = (query or "").strip()
    if query:
        conversations = _search(conversations, user, query)
    return conversations


def inbox_filters(params) -> dict:
    """The inbox page's filters from a query string (a QueryDict): open conversations unless
    `status` asks for another state or "all" (triage.filters.ANY_STATUS)."""
    from triage.filters import DEFAULT_STATUS

    return {
        "platform": params.get("platform", ""),
        "status": params.get("status", "") or DEFAULT_STATUS,
        "label": params.get("label", "").strip()[:20],
        "assigned": params.get("assigned", ""),
        "unread": params.get("unread", "") in ("1", "on", "true"),
        "q": params.get("q", "").strip()[:200],
    }


def filtered_inbox(user, filters: dict):
    """The conversations the inbox page lists for `filters` (inbox_filters), every page."""
    from triage.filters import ANY_STATUS

    return inbox_conversations(
        user,
        platform=filters["platform"],
        status="" if filters["status"] == ANY_STATUS else filters["status"],
        assigned=filters["assigned"],
        unread=filters["unread"],
        query=filters["q"],
        label=filters["label"],
    )


# Up to this many matches, search by id list; beyond, walk the inbox order. Either way about
# this many rows at most are read: N ids, or (page of 50) x (conversations / N) walking.
SEARCH_CANDIDATES = 2000
SEARCH_TEXT_CANDIDATES = 5000  # messages: more (estimated) matching the text, walk the inbox
SEARCH_TEXT_COMMON = 50000  # messages: more, check each walked conversation's own messages


def _client_match(query: str, prefix: str = "") -> Q:
    """The client's name, email or phone contains `query` (`prefix`: the path to the client).
    Phones are stored as E.164, so "+49 151-23" is looked up as "+4915123"."""
    match = Q(**{f"{prefix}name__icontains": query}) | Q(**{f"{prefix}email__icontains": query})
    digits = re.sub(r"[^\d+]", "", query)
    if len(re.sub(r"\D", "", digits)) >= 3:
        match |= Q(**{f"{prefix}phone__icontains": digits})
    return match


def _search(conversations, user, query: str):
    """Conversations whose client's name, email or phone, or whose subject, contains `query`,
    or with a message whose text matches it (full-text: inbox_search.selectors).

    First a probe: up to SEARCH_CANDIDATES + 1 matches of each part, each a small query with
    a LIMIT on its own index (trigram indexes of migration crm 0002, the messages' full-text
    index), so PostgreSQL stops as soon as it has enough. (One UNION of the parts found,
    deduplicated and sorted every match first: 1.5 s for a phone fragment that every client's
    number has; a UNION ALL still hashed every client.) A rare term is then fetched by its
    ids; a common one by walking the inbox order, each conversation's own client row checked
    as it comes (no list of every matching client built first)."""
    from inbox_search.fts import estimated_matches
    from inbox_search.selectors import message_conversation_ids, text_match_filter

    enough = SEARCH_CANDIDATES + 1
    mine = scoped(Conversation, user).order_by()
    clients = list(
        scoped(Client, user)
        .order_by()
        .filter(_client_match(query))
        .values_list("id", flat=True)[:enough]
    )
    ids: set = set()
    # The text part only when few messages match (the statistics' estimate): its query has no
    # LIMIT, since with one PostgreSQL walks every message of every conversation instead.
    estimate = estimated_matches(query)
    if len(clients) < enough and estimate <= SEARCH_TEXT_CANDIDATES:
        parts = [
            mine.filter(subject__icontains=query)[:enough],
            # The matching messages' conversations (every company's: a few thousand at
            # most, by the estimate), then mine among them by primary key; one query joining
            # both made PostgreSQL read all of the company's conversations.
            lambda: mine.filter(pk__in=list(message_conversation_ids(query)))[:enough],
        ]
        if clients:
            parts.insert(0, mine.filter(client_id__in=clients)[:enough])
        for part in parts:
            part = part() if callable(part) else part
            ids.update(part.values_list("id", flat=True))
            if len(ids) >= enough:
                break
        if len(ids) < enough:
            return conversations.filter(pk__in=ids)
    # A word in a good share of all messages: each walked conversation's own messages are
    # checked (a few rows each) instead of first listing every matching message's conversation.
    common = estimate > SEARCH_TEXT_COMMON
    return conversations.filter(
        _client_match(query, "client__")
        | Q(subject__icontains=query)
        | text_match_filter(query, common=common)
    )


def conversation_with_client():
    """Conversations with client and assignee joined (the source loads on first use)."""
    return Conversation.objects.select_related("client", "assignee")


def get_conversation(user, pk) -> Conversation:
    """One conversation with its client and assignee."""
    return get_scoped_or_404(conversation_with_client(), user, pk=pk)


def _messages_of(conversation):
    """The conversation's messages as the thread shows them: author, bot and attachments."""
    return conversation.messages.select_related("author", "bot").prefetch_related(
        "attachments", Prefetch("reactions", MessageReaction.objects.select_related("author"))
    )


def conversation_messages(conversation, limit: int = MESSAGE_LIMIT) -> list:
    """The latest `limit` messages, oldest first."""
    latest = _messages_of(conversation).order_by("-created_at", "-id")
    return list(reversed(latest[:limit]))


def message_page(conversation, *, before=None, limit: int = MESSAGES_PER_PAGE):
    """One page of history, oldest first, and whether there is more before it.

    Without `before`: the newest `limit` messages. With `before` (a message id of this
    conversation): the `limit` messages just before that one, in (created_at, id) order.
    An id that is not in this conversation is a 404.
    """
    latest = _messages_of(conversation).order_by("-created_at", "-id")
    if before is not None:
        cursor = conversation.messages.filter(pk=before).values("created_at", "pk").first()
        if cursor is None:
            raise Http404("Not found.")
        latest = latest.filter(
            Q(created_at__lt=cursor["created_at"])
            | Q(created_at=cursor["created_at"], pk__lt=cursor["pk"])
        )
    rows = list(latest[: limit + 1])
    return list(reversed(rows[:limit])), len(rows) > limit


OPEN_AT_LIMIT = 1000  # opening a conversation at a message loads at most this many


def message_page_through(conversation, pk, *, context: int = 10):
    """The thread opened at message `pk` (a search hit): from `context` messages before it
    to the newest, oldest first, and whether there is more before. None when `pk` is not a
    message of this conversation, or is more than OPEN_AT_LIMIT messages back."""
    if not str(pk).isdigit():
        return None
    cursor = conversation.messages.filter(pk=int(pk)).values("created_at", "pk").first()
    if cursor is None:
        return None
    newer = conversation.messages.filter(
        Q(created_at__gt=cursor["created_at"])
        | Q(created_at=cursor["created_at"], pk__gt=cursor["pk"])
    )
    limit = newer[:OPEN_AT_LIMIT].count() + 1 + context
    if limit > OPEN_AT_LIMIT:
        return None
    return message_page(conversation, limit=limit)


def get_conversation_message(conversation, pk):
    """One message of this conversation (author and bot joined); anything else is a 404."""
    message = _messages_of(conversation).filter(pk=pk).first() if str(pk).isdigit() else None
    if message is None:
        raise Http404("Not found.")
    return message


def quotable_message(conversation, pk):
    """The message of this conversation a reply quotes (`reply_to`), or None for no/bad id."""
    if not str(pk).isdigit():
        return None
    return conversation.messages.filter(pk=int(pk)).first()


def company_members(user):
    """The active users of `user`'s company: whom a conversation can be assigned to."""
    return scoped(User, user).filter(is_active=True).order_by("first_name", "last_name", "username")
