"""Reads for the settings page. Secret columns are never loaded (deferred); each list
carries only whether a secret is set, as `<name>_set` booleans."""

from django.db.models import BooleanField, ExpressionWrapper, Q

from accounts.scoping import scoped
from channels_integrations.models import EmailAccount, TelegramAccount, WhatsAppNumber
from crm.fields import secret_field_names


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


def whatsapp_numbers(user):
    return (
        _without_secrets(WhatsAppNumber, user)
        .exclude(status=WhatsAppNumber.Status.DELETING)
        .select_related("session")
    )


def telegram_accounts(user):
    return _without_secrets(TelegramAccount, user)


def email_accounts(user):
    return _without_secrets(EmailAccount, user).select_related("owner")
