"""Tenant scoping, in one place.

Every tenant-owned model names the path from itself to its company in `tenant_path`
(e.g. "company", "conversation__company"). Reads go through `scoped()` /
`get_scoped_or_404()`, so "missing" and "another company's" are the same 404.

Conversations and what hangs off them also name their path to the conversation
(`visibility_path`, "" for the conversation itself): when the company lets agents see only
their own conversations, an agent's reads hold the ones assigned to them and the unassigned
ones, and anything else is the same 404 (pages, API, and realtime through messaging.events).
"""

from django.db import models
from django.http import Http404


class TenantQuerySet(models.QuerySet):
    def for_company(self, company):
        company_id = getattr(company, "pk", company)
        if company_id is None:
            return self.none()
        return self.filter(**{f"{self.model.tenant_path}_id": company_id})


class TenantManager(models.Manager.from_queryset(TenantQuerySet)):
    pass


def scoped(model_or_queryset, actor) -> models.QuerySet:
    """The rows of `actor`'s company (a user, or a company)."""
    queryset = (
        model_or_queryset
        if isinstance(model_or_queryset, models.QuerySet)
        else model_or_queryset._default_manager.all()
    )
    company_id = getattr(actor, "company_id", getattr(actor, "pk", None))
    if company_id is None:
        return queryset.none()
    queryset = queryset.filter(**{f"{queryset.model.tenant_path}_id": company_id})
    path = getattr(queryset.model, "visibility_path", None)
    if path is not None and not getattr(actor, "sees_all_conversations", True):
        queryset = queryset.filter(visible_conversations(actor, path))
    return queryset


def visible_conversations(user, path: str = "") -> models.Q:
    """The conversations (reached through `path`) a restricted agent sees: theirs and the
    unassigned ones."""
    return models.Q(**{f"{path}assignee_id": user.pk}) | models.Q(
        **{f"{path}assignee__isnull": True}
    )


def get_scoped_or_404(model_or_queryset, actor, **lookup):
    try:
        return scoped(model_or_queryset, actor).get(**lookup)
    except (models.ObjectDoesNotExist, ValueError, TypeError):
        raise Http404("Not found.") from None
