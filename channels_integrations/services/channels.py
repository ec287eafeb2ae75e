"""Writes for connected channels (numbers, Telegram accounts, email accounts)."""

import logging

from django.core.exceptions import ValidationError
from django.db import transaction

from crm.fields import secret_field_names
from crm.services import delete_in_database, save_validated

from ..models import EmailAccount, TelegramAccount, WhatsAppNumber
from ..whatsapp.numbers import publish_number_updated

logger = logging.getLogger(__name__)

# Fields a company admin may set, per model; secrets left blank keep their stored value.
EDITABLE = {
    WhatsAppNumber: (
        "phone",
        "display_name",
        "provider",
        "is_active",
        "cloud_phone_number_id",
        "cloud_business_account_id",
        "cloud_access_token",
        "cloud_app_secret",
        "cloud_verify_token",
    ),
    TelegramAccount: ("name", "phone", "api_id", "api_hash", "session_string", "is_active"),
    EmailAccount: (
        "owner",
        "address",
        "display_name",
        "imap_host",
        "imap_port",
        "imap_ssl",
        "smtp_host",
        "smtp_port",
        "smtp_security",
        "username",
        "password",
        "is_active",
        "poll_interval_seconds",
        "first_sync_days",
        "use_idle",
    ),
}
UNIQUE_PER_COMPANY = {
    WhatsAppNumber: ("phone",),
    TelegramAccount: ("phone",),
    EmailAccount: ("address",),
}


def _apply(instance, fields: dict) -> None:
    model = type(instance)
    for name, value in fields.items():
        if name not in EDITABLE[model]:
            raise TypeError(f"{model.__name__}: field {name!r} is not editable")
        if name in secret_field_names(model) and value in (None, "") and instance.pk:
            continue  # blank secret on edit = keep the stored one
        setattr(instance, name, value)


def save_channel(actor, model, instance=None, **fields):
    """Create (instance=None) or update a channel of actor's company."""
    if instance is None:
        instance = model(company=actor.company)
    if model is EmailAccount and fields.get("owner") is not None:
        if fields["owner"].company_id != actor.company_id:
            raise ValidationError({"owner": ["Choose a member of your company."]})
    if model is EmailAccount and instance.pk is None and "owner" not in fields:
        fields["owner"] = actor
    new_session = model is TelegramAccount and bool(fields.get("session_string"))
    _apply(instance, fields)
    if model is EmailAccount:
        _require_encryption_off_loopback(instance)
    created = instance.pk is None
    if new_session:  # a pasted session: connect it afresh
        instance.status = TelegramAccount.Status.NEW
        instance.reconnect_attempts = 0
        instance.next_attempt_at = None
    with transaction.atomic():
        save_validated(instance, UNIQUE_PER_COMPANY[model])
        if model is WhatsAppNumber:
            publish_number_updated(instance)
        if model is TelegramAccount:
            _restart_or_stop_listener(instance, new_session)
    logger.info(
        "%s %s id=%s company=%s",
        model.__name__,
        "created" if created else "updated",
        instance.pk,
        instance.company_id,
    )
    return instance


def _require_encryption_off_loopback(account: EmailAccount) -> None:
    from ..email.smtp import is_loopback

    if account.smtp_security == EmailAccount.SmtpSecurity.NONE and not is_loopback(
        account.smtp_host
    ):
        raise ValidationError(
            {
                "smtp_security": [
                    "Unencrypted SMTP is for loopback only; choose SSL/TLS or STARTTLS."
                ]
            }
        )


def _restart_or_stop_listener(account: TelegramAccount, new_session: bool) -> None:
    from ..telegram.listener import start_now, stop_listener

    if not account.is_active or new_session:
        transaction.on_commit(lambda: stop_listener(account.pk))  # it reconnects afresh
    if account.is_active and new_session:
        transaction.on_commit(lambda: start_now(account.pk))


def reconnect_telegram(actor, account: TelegramAccount) -> None:
    """An admin restarts a listener that gave up (error) or is backing off: from scratch."""
    from ..telegram.listener import start_now, stop_listener

    TelegramAccount.objects.filter(pk=account.pk).update(
        status=TelegramAccount.Status.NEW, reconnect_attempts=0, next_attempt_at=None
    )
    stop_listener(account.pk)
    start_now(account.pk)
    logger.info("telegram account=%s reconnect asked by user=%s", account.pk, actor.pk)


def delete_channel(actor, instance) -> None:
    """Delete a Telegram or email account and its conversations and messages (one SQL DELETE)."""
    with transaction.atomic():
        if isinstance(instance, TelegramAccount):
            from ..telegram.listener import stop_listener

            transaction.on_commit(lambda: stop_listener(instance.pk))
        delete_in_database(instance)
    logger.info(
        "%s deleted id=%s company=%s", type(instance).__name__, instance.pk, actor.company_id
    )
