"""Reads for search, always scoped to the actor's company (accounts.scoping)."""

from django.db.models import Exists, OuterRef, Q, QuerySet

from accounts.scoping import scoped
from messaging.models import Message

from . import fts


def message_hits(user, query: str) -> QuerySet:
    """The actor's company's messages whose text matches `query`, newest first, each with
    its conversation and client joined and `headline` (the text around the matches, see
    fts.headline_html). Nothing for a query without a word."""
    match = fts.message_match(query)
    if match is None:
        return scoped(Message, user).none()
    return (
        scoped(Message, user)
        .filter(match)
        .select_related("conversation", "conversation__client")
        .annotate(headline=fts.message_headline(query))
        .order_by("-created_at", "-id")
    )


def message_conversation_ids(query: str) -> set:
    """Ids of the conversations, of every company, with a message whose text matches `query`
    (for a rare query only: the caller scopes them and checks how many the estimate gives,
    inbox_search.fts.estimated_matches)."""
    match = fts.message_match(query)
    if match is None:
        return set()
    return set(Message.objects.filter(match).values_list("conversation_id", flat=True))


def text_match_filter(query: str, *, common: bool = False) -> Q:
    """A filter for a queryset of conversations that is already scoped to the actor's
    company: the conversation has a message whose text matches `query`. (Unscoped inside: the
    outer scope decides which conversations there are; scoping here too would join all of
    the company's conversations once more.)

    `common`: the word is in a good share of all messages (fts.estimated_matches), so the
    check runs per conversation on its own messages (EXISTS through the conversation's
    history index) while the inbox is walked; otherwise the matching messages' conversations
    are listed once (through the full-text index) and looked up."""
    match = fts.message_match(query)
    if match is None:
        return Q(pk__in=[])
    if common:
        return Q(Exists(Message.objects.filter(match, conversation_id=OuterRef("pk"))))
    return Q(pk__in=Message.objects.filter(match).values("conversation_id"))


def newest_hit_per_conversation(user, query: str, conversation_ids) -> dict:
    """{conversation id: (message id, headline HTML)} of the newest matching message of
    each of these conversations (the inbox list shows it under the conversation)."""
    match = fts.message_match(query)
    if match is None or not conversation_ids:
        return {}
    rows = (
        scoped(Message, user)
        .filter(match, conversation_id__in=list(conversation_ids))
        .annotate(headline=fts.message_headline(query))
        .order_by("conversation_id", "-created_at", "-id")
        .distinct("conversation_id")
        .values_list("conversation_id", "id", "headline")
    )
    return {conv: (pk, fts.headline_html(headline)) for conv, pk, headline in rows}
