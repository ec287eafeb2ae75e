"""Access taken away reaches the open WebSockets within moments: a revoked API token, a session
logged out, a changed password or a deactivated user closes the sockets it opened, with code
4401 (log in again). This is what the Channels layer (channels-redis) carries: a control
message to the sockets of one token, session or user, wherever they are connected; realtime
events themselves travel through messaging.realtime's hub.

Every socket joins the groups `groups_for` names when it connects; `revoke` sends to them after
the change commits.
"""

import asyncio
import logging
import threading

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models.signals import post_delete, pre_save
from django.dispatch import receiver

from .models import ApiToken, Company, User

logger = logging.getLogger(__name__)

CLOSE_REVOKED = 4401  # the same code as an unauthenticated socket: log in again
MESSAGE = {"type": "auth.revoked"}


CLOSE_RECONNECT = 4001  # what the socket may hear changed: the client reconnects at once
RECONNECT = {"type": "auth.reconnect"}


def groups_for(
    user_id: int | None = None,
    *,
    token_id: int | None = None,
    session_key: str = "",
    company_id: int | None = None,
) -> list[str]:
    """The groups of a user, a token, a session and a company (those given): a socket joins
    its own, a revocation sends to them."""
    groups = []
    if company_id is not None:
        groups.append(f"auth.company.{company_id}")
    if user_id is not None:
        groups.append(f"auth.user.{user_id}")
    if token_id is not None:
        groups.append(f"auth.token.{token_id}")
    if session_key:
        groups.append(f"auth.session.{session_key}")
    return groups


def revoke(
    *,
    user_id: int | None = None,
    token_id: int | None = None,
    session_key: str = "",
    company_id: int | None = None,
):
    """Close, after commit, the sockets of this user, token, session or company."""
    groups = groups_for(user_id, token_id=token_id, session_key=session_key, company_id=company_id)
    transaction.on_commit(lambda: _send(groups), robust=True)


def reconnect(*, user_id: int | None = None, company_id: int | None = None):
    """After commit, make the sockets of this user or company reconnect (what they may hear
    changed: a role, the company's conversation visibility)."""
    groups = groups_for(user_id, company_id=company_id)
    transaction.on_commit(lambda: _send(groups, RECONNECT), robust=True)


def _send(groups: list[str], message: dict = MESSAGE) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        _send_now(groups, message)
        return
    # This thread runs an event loop (sync code called from one: Playwright's in the browser
    # tests), where async_to_sync refuses to run: send from a thread of its own.
    sender = threading.Thread(target=_send_now, args=(groups, message), name="revocation")
    sender.start()
    sender.join(10)


def _send_now(groups: list[str], message: dict) -> None:
    layer = get_channel_layer()
    for group in groups:
        try:
            async_to_sync(layer.group_send)(group, message)
        except Exception as exc:
            logger.warning("revocation: %s not sent (%s)", group, exc.__class__.__name__)
    logger.info("revocation: closed the sockets of %s", ", ".join(groups))


@receiver(post_delete, sender=ApiToken, dispatch_uid="accounts.revocation.token_deleted")
def _token_deleted(sender, instance, **kwargs):
    revoke(token_id=instance.pk)


@receiver(user_logged_out, dispatch_uid="accounts.revocation.logged_out")
def _logged_out(sender, request, user, **kwargs):
    session_key = getattr(getattr(request, "session", None), "session_key", "") or ""
    if session_key:
        revoke(session_key=session_key)


@receiver(pre_save, sender=User, dispatch_uid="accounts.revocation.user_changed")
def _user_changed(sender, instance, update_fields=None, **kwargs):
    """A new password or a deactivation ends every socket of the user."""
    if instance.pk is None:
        return
    if update_fields is not None and not {"password", "is_active", "role"} & set(update_fields):
        return  # e.g. last_login on every log-in: nothing to look up
    before = User.objects.filter(pk=instance.pk).values("password", "is_active", "role").first()
    if before is None:
        return
    if before["password"] != instance.password or (before["is_active"] and not instance.is_active):
        revoke(user_id=instance.pk)
    elif before["role"] != instance.role:
        reconnect(user_id=instance.pk)


@receiver(pre_save, sender=Company, dispatch_uid="accounts.revocation.company_changed")
def _company_changed(sender, instance, update_fields=None, **kwargs):
    """A deactivated company: every socket of its people closes. A changed visibility: they
    reconnect (and join the groups they now may)."""
    if instance.pk is None:
        return
    before = (
        Company.objects.filter(pk=instance.pk)
        .values("is_active", "agents_see_all_conversations")
        .first()
    )
    if before is None:
        return
    if before["is_active"] != instance.is_active:
        from accounts.selectors import forget_company_states

        transaction.on_commit(forget_company_states, robust=True)
    if before["is_active"] and not instance.is_active:
        revoke(company_id=instance.pk)
    elif before["agents_see_all_conversations"] != instance.agents_see_all_conversations:
        reconnect(company_id=instance.pk)
