"""Saving and deleting a channel's account (a number, a Telegram account, a mailbox): what every
channel shares. Each channel says in its folder (`accounts.py`) what of its account an admin may
edit, what is unique per company, and what happens around a save or a delete
(`register_account`)."""

import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from crm.fields import secret_field_names
from crm.services import delete_in_database, save_validated

logger = logging.getLogger(__name__)


# Every channel row names its team and how its new conversations are assigned (teams).
ROUTING = ("team", "distribution")


def _nothing(*args) -> None:
    return None


@dataclass(frozen=True)
class AccountKind:
    """How one channel's account model is edited by company admins."""

    model: type
    editable: tuple[str, ...]  # fields an admin may set; blank secrets keep the stored value
    unique_per_company: tuple[str, ...]
    # prepare(actor, instance, fields): check and complete the fields before they are applied
    # (raise ValidationError naming the field); instance.pk is None on create.
    prepare: Callable = _nothing
    # prepared(instance, fields): after the fields were applied, before the row is saved.
    prepared: Callable = _nothing
    # saved(instance, fields): inside the save's transaction (queue effects with on_commit).
    saved: Callable = _nothing
    # deleting(instance): inside the delete's transaction, before the row goes.
    deleting: Callable = _nothing


_KINDS: dict[type, AccountKind] = {}


def register_account(kind: AccountKind) -> AccountKind:
    _KINDS[kind.model] = kind
    return kind


def account_kind(model) -> AccountKind:
    return _KINDS[model]


def _apply(kind: AccountKind, instance, fields: dict) -> None:
    secrets = secret_field_names(kind.model)
    for name, value in fields.items():
        if name not in kind.editable:
            raise TypeError(f"{kind.model.__name__}: field {name!r} is not editable")
        if name in secrets and value in (None, "") and instance.pk:
            continue  # blank secret on edit = keep the stored one
        setattr(instance, name, value)


def save_channel(actor, model, instance=None, **fields):
    """Create (instance=None) or update a channel account of actor's company."""
    kind = account_kind(model)
    if instance is None:
        instance = model(company=actor.company)
    created = instance.pk is None
    team = fields.get("team")
    if team is not None and team.company_id != actor.company_id:
        raise ValidationError({"team": [_("Choose a team of your company.")]})
    kind.prepare(actor, instance, fields)
    _apply(kind, instance, fields)
    kind.prepared(instance, fields)
    with transaction.atomic():
        save_validated(instance, kind.unique_per_company)
        kind.saved(instance, fields)
    logger.info(
        "%s %s id=%s company=%s",
        model.__name__,
        "created" if created else "updated",
        instance.pk,
        instance.company_id,
    )
    return instance


def delete_channel(actor, instance) -> None:
    """Delete an account with its conversations and messages (one SQL DELETE; the database
    cascades, and the account's trigger takes its conversations)."""
    kind = account_kind(type(instance))
    with transaction.atomic():
        kind.deleting(instance)
        delete_in_database(instance)
    logger.info(
        "%s deleted id=%s company=%s", type(instance).__name__, instance.pk, actor.company_id
    )
