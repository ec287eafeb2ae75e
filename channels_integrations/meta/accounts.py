"""A Page or an Instagram account as company admins edit it (Settings → Instagram &
Messenger, `meta/pages/`, `meta/instagram-accounts/`): saving, testing the connection, what a
delete takes with it."""

import logging

from django.db.models import Count, Q
from django.utils.translation import gettext as _

from messaging.models import Conversation, Message

from ..services.channels import ROUTING, AccountKind, register_account
from . import graph
from .models import InstagramAccount, MessengerPage

logger = logging.getLogger(__name__)

SHARED = (
    "name",
    "page_id",
    "page_access_token",
    "app_secret",
    "verify_token",
    "human_agent_tag",
    "is_active",
    *ROUTING,
)

MESSENGER_KIND = register_account(
    AccountKind(model=MessengerPage, editable=SHARED, unique_per_company=("page_id",))
)
INSTAGRAM_KIND = register_account(
    AccountKind(
        model=InstagramAccount, editable=(*SHARED, "ig_user_id"), unique_per_company=("ig_user_id",)
    )
)


def test_connection(actor, account) -> dict:
    """Ask Graph with the stored token (and app secret, as appsecret_proof) what it is:
    {"ok", "detail"} in words; the account's status and last error follow."""
    token, secret = account.page_access_token or "", account.app_secret or ""
    name, problem = graph.check_page(account.page_id, token, secret)
    username = ""
    if not problem and isinstance(account, InstagramAccount):
        username, problem = graph.check_instagram(account.ig_user_id, token, secret)
    if not problem and not secret:
        problem = _("No app secret is stored: webhook deliveries cannot be verified.")
    if not problem and not account.verify_token:
        problem = _("No verify token is stored: Meta cannot verify the webhook URL.")
    fields = {"status": MessengerPage.Status.ERROR if problem else MessengerPage.Status.OK}
    fields["last_error"] = problem
    if username:
        fields["username"] = username
    type(account).objects.filter(pk=account.pk).update(**fields)
    for key, value in fields.items():
        setattr(account, key, value)
    logger.info(
        "meta: %s=%s connection test by user=%s ok=%s",
        type(account).__name__,
        account.pk,
        actor.pk,
        not problem,
    )
    if problem:
        return {"ok": False, "detail": problem}
    if username:
        detail = _("Connected: Page %(page)s, Instagram @%(username)s.") % {
            "page": name,
            "username": username,
        }
    else:
        detail = _("Connected: Page %(page)s.") % {"page": name}
    return {"ok": True, "detail": detail}


def deletion_preview(account) -> dict[str, int]:
    """What goes with the account: its conversations and their messages (counted by the
    database), and the account itself."""
    conversations = Conversation.objects.of_source(account)
    counts = conversations.aggregate(conversations=Count("id"))
    counts["messages"] = Message.objects.filter(
        Q(conversation__in=conversations.values("pk"))
    ).count()
    counts["total"] = counts["conversations"] + counts["messages"] + 1
    return counts
