"""Reads for labels and saved views, scoped to the actor's company."""

import operator
from functools import reduce

from django.db import connection
from django.db.models import Count, Prefetch, Q

from accounts.scoping import get_scoped_or_404, scoped
from messaging.models import Conversation

from .filters import conversation_q
from .models import ClientLabel, ConversationLabel, Label, SavedView


def company_labels(user):
    return scoped(Label, user)


def get_label(user, pk) -> Label:
    return get_scoped_or_404(Label, user, pk=pk)


def labels_by_ids(user, ids) -> list[Label]:
    """The company's labels with these ids (others' ids are simply not found)."""
    ids = [int(value) for value in ids if str(value).isdigit()]
    return list(scoped(Label, user).filter(pk__in=ids))


def label_usage(label: Label) -> dict:
    """What a label is on: {"conversations": n, "clients": n}."""
    return {
        "conversations": ConversationLabel.objects.filter(label=label).count(),
        "clients": ClientLabel.objects.filter(label=label).count(),
    }


def labels_with_usage(user):
    """The company's labels, each with `conversation_count` and `client_count`."""
    return company_labels(user).annotate(
        conversation_count=Count("conversation_links", distinct=True),
        client_count=Count("client_links", distinct=True),
    )


def conversation_labels(conversation) -> list[Label]:
    return list(Label.objects.filter(conversation_links__conversation=conversation))


def client_labels(client) -> list[Label]:
    return list(Label.objects.filter(client_links__client=client))


def label_links_prefetch() -> Prefetch:
    """Prefetch of a conversation's labels: `conversation.label_links.all()`, label joined."""
    return Prefetch(
        "label_links", ConversationLabel.objects.select_related("label").order_by("label__name")
    )


def labels_of_conversations(ids) -> dict[int, list[int]]:
    """{conversation id: [label ids]} for a page of conversations (one query)."""
    found: dict[int, list[int]] = {}
    ids = [int(pk) for pk in ids]
    if not ids:
        return found
    # Plain SQL: the API list runs this on every request, and the ORM's query building cost
    # more CPU than the query (bench/api_list_cpu.py). One array parameter, whatever the page.
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT conversation_id, label_id FROM "{ConversationLabel._meta.db_table}" '  # noqa: S608
            "WHERE conversation_id = ANY(%s) ORDER BY conversation_id, label_id",
            [ids],
        )
        for conversation_id, label_id in cursor.fetchall():
            found.setdefault(conversation_id, []).append(label_id)
    return found


def visible_views(user):
    """The saved views `user` sees: their own and the company's shared ones."""
    return scoped(SavedView, user).filter(Q(owner=user) | Q(shared=True)).select_related("owner")


def get_view(user, pk) -> SavedView:
    """A view `user` sees; someone else's personal view is a 404 like a missing one."""
    return get_scoped_or_404(visible_views(user), user, pk=pk)


def views_with_counts(user) -> list[SavedView]:
    """The visible views, each with `count`: how many conversations match it now. One
    aggregate query for the whole list (a FILTER per view), whatever its length."""
    views = list(visible_views(user))
    if not views:
        return views
    conditions = {view.pk: conversation_q(user, view.filters) for view in views}
    # Only rows some view can count are read (e.g. the open ones, through the status index).
    # (An empty condition, a view of every conversation, means no narrowing: `Q() | x` is x.)
    candidates = scoped(Conversation, user)
    if all(conditions.values()):
        candidates = candidates.filter(reduce(operator.or_, conditions.values()))
    counts = candidates.aggregate(
        **{f"v{pk}": Count("pk", filter=condition) for pk, condition in conditions.items()}
    )
    for view in views:
        view.count = counts[f"v{view.pk}"]
    return views


OTHER_CONVERSATIONS = 20  # the side panel lists at most this many


def contact_panel(user, conversation) -> dict:
    """What the conversation page's side panel shows: the client, their labels, this
    conversation's labels, the client's other conversations on every channel, and the
    company's labels to choose from."""
    client = conversation.client
    others = []
    if client is not None:
        others = list(
            scoped(Conversation, user)
            .filter(client=client)
            .exclude(pk=conversation.pk)
            .select_related("assignee")[:OTHER_CONVERSATIONS]
        )
    return {
        "panel_client": client,
        "panel_client_labels": client_labels(client) if client is not None else [],
        "panel_conversation_labels": conversation_labels(conversation),
        "panel_other_conversations": others,
        "panel_labels": list(company_labels(user)),
    }
