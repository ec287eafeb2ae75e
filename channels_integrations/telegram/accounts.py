"""A Telegram account as company admins edit it: a pasted session connects afresh; a
deactivated account's listener stops; an admin may restart one that gave up."""

import logging

from django.db import transaction

from ..models import TelegramAccount
from ..services.channels import ROUTING, AccountKind, register_account
from .listener import start_now, stop_listener

logger = logging.getLogger(__name__)


def _new_session(fields: dict) -> bool:
    return bool(fields.get("session_string"))


def _prepared(account: TelegramAccount, fields: dict) -> None:
    if _new_session(fields):  # a pasted session: connect it afresh
        account.status = TelegramAccount.Status.NEW
        account.reconnect_attempts = 0
        account.next_attempt_at = None


def _saved(account: TelegramAccount, fields: dict) -> None:
    new_session = _new_session(fields)
    if not account.is_active or new_session:
        transaction.on_commit(lambda: stop_listener(account.pk))  # it reconnects afresh
    if account.is_active and new_session:
        transaction.on_commit(lambda: start_now(account.pk))


def _deleting(account: TelegramAccount) -> None:
    transaction.on_commit(lambda: stop_listener(account.pk))


KIND = register_account(
    AccountKind(
        model=TelegramAccount,
        editable=("name", "phone", "api_id", "api_hash", "session_string", "is_active", *ROUTING),
        unique_per_company=("phone",),
        prepared=_prepared,
        saved=_saved,
        deleting=_deleting,
    )
)


def reconnect(actor, account: TelegramAccount) -> None:
    """An admin restarts a listener that gave up (error) or is backing off: from scratch."""
    TelegramAccount.objects.filter(pk=account.pk).update(
        status=TelegramAccount.Status.NEW, reconnect_attempts=0, next_attempt_at=None
    )
    stop_listener(account.pk)
    start_now(account.pk)
    logger.info("telegram account=%s reconnect asked by user=%s", account.pk, actor.pk)
