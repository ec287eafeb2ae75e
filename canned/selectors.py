"""Reads of canned replies: what `user` may see is the company's and their own personal ones
(another agent's personal replies are a 404, as another company's are)."""

from django.db.models import Case, IntegerField, Q, QuerySet, Value, When

from accounts.scoping import get_scoped_or_404, scoped

from .models import CannedReply


def visible_replies(user, query: str = "") -> QuerySet:
    """The company-wide and the user's personal replies; `query` filters by shortcut or
    title (shortcuts that start with it first; the API pages by shortcut instead)."""
    replies = scoped(CannedReply, user).filter(Q(owner__isnull=True) | Q(owner=user))
    query = (query or "").replace("\x00", "").strip().lstrip("/")[:50]
    if not query:
        return replies.select_related("owner").order_by("shortcut", "id")
    replies = replies.filter(Q(shortcut__icontains=query) | Q(title__icontains=query))
    first = Case(
        When(shortcut__istartswith=query, then=Value(0)),
        default=Value(1),
        output_field=IntegerField(),
    )
    return replies.select_related("owner").order_by(first, "shortcut", "id")


def get_reply(user, pk) -> CannedReply:
    return get_scoped_or_404(visible_replies(user), user, pk=pk)
