"""Reads for the settings page. Secret columns are never loaded (deferred); each list
carries only whether a secret is set, as `<name>_set` booleans."""

from django.db.models import (
    BooleanField,
    Count,
    ExpressionWrapper,
    IntegerField,
    OuterRef,
    Q,
    Subquery,
)
from django.db.models.functions import Coalesce

from accounts.scoping import get_scoped_or_404, scoped
from channels_integrations.models import (
    Bot,
    Broadcast,
    EmailAccount,
    EmailQuarantine,
    TelegramAccount,
    WhatsAppNumber,
)
from crm.fields import secret_field_names
from messaging.models import Conversation

from .whatsapp import PLATFORM as WHATSAPP


def _without_secrets(model, user):
    secrets = secret_field_names(model)
    # SecretField stores an empty secret as NULL, so "set" is "not NULL".
    is_set = {
        f"{name}_set": ExpressionWrapper(
            Q(**{f"{name}__isnull": False}), output_field=BooleanField()
        )
        for name in secrets
    }
    return scoped(model, user).defer(*secrets).annotate(**is_set)


def _count_per_number(rows, number_field: str):
    """How many `rows` point at the outer number: a correlated COUNT, so a list of numbers
    with its counts is one query whatever the numbers carry (no join fan-out)."""
    counts = (
        rows.filter(**{number_field: OuterRef("pk")})
        .order_by()
        .values(number_field)
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(counts, output_field=IntegerField()), 0)


def whatsapp_numbers(user):
    """The company's numbers (not those being deleted), each with `bot_count`,
    `conversation_count` and `broadcast_count`: one query."""
    return (
        _without_secrets(WhatsAppNumber, user)
        .exclude(status=WhatsAppNumber.Status.DELETING)
        .select_related("session")
        .annotate(
            bot_count=_count_per_number(Bot.objects.all(), "number"),
            conversation_count=_count_per_number(
                Conversation.objects.filter(platform=WHATSAPP), "source_id"
            ),
            broadcast_count=_count_per_number(Broadcast.objects.all(), "number"),
        )
    )


def telegram_accounts(user):
    return _without_secrets(TelegramAccount, user)


def email_accounts(user):
    return _without_secrets(EmailAccount, user).select_related("owner")


QUARANTINE_SHOWN = 50


def email_accounts_with_quarantine(user) -> list:
    """The company's mailboxes, each with `quarantine_count` and `quarantine_items` (the
    newest QUARANTINE_SHOWN mails that could not be imported, without their raw bytes)."""
    accounts = list(email_accounts(user).annotate(quarantine_count=Count("quarantined")))
    items = (
        EmailQuarantine.objects.filter(account__in=[a.pk for a in accounts if a.quarantine_count])
        .defer("raw")
        .order_by("-created_at", "-id")
    )
    by_account = {}
    for item in items:
        shown = by_account.setdefault(item.account_id, [])
        if len(shown) < QUARANTINE_SHOWN:
            shown.append(item)
    for account in accounts:
        account.quarantine_items = by_account.get(account.pk, [])
    return accounts


def email_quarantined(user, account_pk: int, pk: int):
    """One mail that could not be imported, of the user's company (404 otherwise)."""
    return get_scoped_or_404(EmailQuarantine, user, pk=pk, account_id=account_pk)
