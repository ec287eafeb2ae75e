"""Writes of canned replies. Company-wide replies are managed by company admins; a personal
reply only by its owner. Bad input is a ValidationError naming the field; nothing is saved."""

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from accounts.models import User

from . import rendering
from .models import CannedReply

FIELDS = ("title", "shortcut", "body")


def can_manage(user: User, reply: CannedReply | None = None, *, personal: bool = True) -> bool:
    """Whether `user` may create (reply None) or change/delete `reply`."""
    if reply is not None:
        personal = reply.is_personal
        if personal:
            return reply.owner_id == user.pk
    return personal or user.is_company_admin


def _validated(reply: CannedReply) -> CannedReply:
    reply.shortcut = (reply.shortcut or "").strip().lstrip("/")
    reply.title = (reply.title or "").strip()
    for name in FIELDS:
        if "\x00" in (getattr(reply, name) or ""):
            raise ValidationError({name: [_("Must not contain NUL characters.")]})
    reply.full_clean(exclude=["company", "owner"], validate_constraints=False)
    unknown = rendering.unknown_variables(reply.body)
    if unknown:
        known = rendering.known_variables()
        raise ValidationError(
            {
                "body": [
                    _("Unknown variable %(names)s. Known: %(known)s.")
                    % {"names": ", ".join(map(rendering.braces, unknown)), "known": known}
                ]
            }
        )
    return reply


def _save(reply: CannedReply) -> CannedReply:
    try:
        with transaction.atomic():
            reply.save()
    except IntegrityError:
        raise ValidationError(
            {"shortcut": [_("Another reply already uses the shortcut “%s”.") % reply.shortcut]}
        ) from None
    return reply


def create_canned_reply(
    user: User, *, title: str, shortcut: str, body: str, personal: bool = True
) -> CannedReply:
    if not can_manage(user, personal=personal):
        raise PermissionDenied(_("Only company admins manage the company's canned replies."))
    reply = CannedReply(
        company=user.company,
        owner=user if personal else None,
        title=title,
        shortcut=shortcut,
        body=body,
    )
    return _save(_validated(reply))


def update_canned_reply(user: User, reply: CannedReply, **changes) -> CannedReply:
    if not can_manage(user, reply):
        raise PermissionDenied(_("You cannot change this canned reply."))
    for name, value in changes.items():
        if name in FIELDS:
            setattr(reply, name, value)
    return _save(_validated(reply))


def delete_canned_reply(user: User, reply: CannedReply) -> None:
    if not can_manage(user, reply):
        raise PermissionDenied(_("You cannot delete this canned reply."))
    reply.delete()
