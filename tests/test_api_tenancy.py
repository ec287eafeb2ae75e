"""Nobody sees or touches another company's rows through any API endpoint: another company's
id answers 404 exactly like a missing one, and lists hold only the caller's rows."""

import re

import pytest

from crm.api.urls import router

from .factories import (
    AttachmentFactory,
    ClientFactory,
    ConversationFactory,
    DealFactory,
    EmailAccountFactory,
    InstagramAccountFactory,
    MessageFactory,
    MessengerPageFactory,
    PipelineFactory,
    TelegramAccountFactory,
    UserFactory,
    WhatsAppNumberFactory,
)

pytestmark = pytest.mark.django_db


def _token_of(user):
    from accounts.models import ApiToken

    return ApiToken.issue(user, "t")[0]


def _chat_of(company):
    """A team chat of `company` with all its people as members (lists show members' chats)."""
    from .factories import ChatMemberFactory, TeamChatFactory

    chat = TeamChatFactory(company=company)
    for user in company.members.all():
        ChatMemberFactory(chat=chat, user=user)
    return chat


def _bot_rule_of(company):
    from .factories import BotRuleFactory

    return BotRuleFactory(bot__number__company=company)


def _broadcast_of(company):
    from .factories import BroadcastRecipientFactory

    return BroadcastRecipientFactory(broadcast__number__company=company).broadcast


def _notification_of(company):
    """A notification of the company's first member (the admin the test signs in as)."""
    from notifications.models import Notification

    user = company.members.order_by("pk").first() or UserFactory(company=company)
    return Notification.objects.create(
        company=company, user=user, kind="assigned", subject="A conversation"
    )


def _session_of(company):
    from .factories import WhatsAppSessionFactory

    return WhatsAppSessionFactory(number__company=company, number__provider="web")


def _canned_reply_of(company):
    from canned.models import CannedReply

    return CannedReply.objects.create(
        company=company, title="Greeting", shortcut=f"greet{company.pk}", body="Hi"
    )


def _invitation_of(company):
    from datetime import timedelta

    from django.utils import timezone

    from teams.models import Invitation

    return Invitation.objects.create(
        company=company,
        email="new@example.com",
        key_hash=Invitation.new_key(),
        expires_at=timezone.now() + timedelta(days=1),
    )


def _team_of(company):
    from teams.models import Team

    return Team.objects.create(company=company, name=f"Team of {company.pk}")


def _label_of(company):
    from triage.models import Label

    return Label.objects.create(company=company, name=f"L{Label.objects.count()}")


def _shared_view_of(company):
    from triage.models import SavedView

    owner = UserFactory(company=company)
    return SavedView.objects.create(company=company, owner=owner, name="V", shared=True)


def _export_of(company):
    from exports.models import ExportJob

    return ExportJob.objects.create(
        company=company, kind="whatsapp", object_id=1, subject_name="WhatsApp +4915100000001"
    )


# basename -> make(company) returning a row owned by that company. Every endpoint registered
# on the router must be listed here, so a new endpoint cannot skip this test.
OWNED_ROW = {
    "client": lambda company: ClientFactory(company=company),
    "whatsapp-number": lambda company: WhatsAppNumberFactory(company=company),
    "telegram-account": lambda company: TelegramAccountFactory(company=company),
    "email-account": lambda company: EmailAccountFactory(company=company),
    "api-token": lambda company: _token_of(UserFactory(company=company)),
    "conversation": lambda company: ConversationFactory(company=company),
    "conversation-message": lambda company: MessageFactory(conversation__company=company),
    "conversation-note": lambda company: MessageFactory(
        conversation__company=company, direction="note", external_id=None
    ),
    "notification": _notification_of,
    "attachment": lambda company: AttachmentFactory(message__conversation__company=company),
    "chat": _chat_of,
    "chat-message": lambda company: _chat_of(company).messages.create(body="Hi"),
    "whatsapp-bot": lambda company: _bot_rule_of(company).bot,
    "whatsapp-bot-rule": _bot_rule_of,
    "whatsapp-broadcast": lambda company: _broadcast_of(company),
    "whatsapp-session": lambda company: _session_of(company),
    "meta-page": lambda company: MessengerPageFactory(company=company),
    "meta-instagram-account": lambda company: InstagramAccountFactory(company=company),
    "pipeline": lambda company: PipelineFactory(company=company),
    "deal": lambda company: DealFactory(company=company),
    "search": lambda company: MessageFactory(
        conversation__company=company, body="Parcel in Hamburg"
    ),
    "canned-reply": lambda company: _canned_reply_of(company),
    "member": lambda company: UserFactory(company=company),
    "invitation": lambda company: _invitation_of(company),
    "team": lambda company: _team_of(company),
    "label": _label_of,
    "saved-view": _shared_view_of,
    "export": _export_of,
}
# Lists that need a query string to list anything.
LIST_QUERY = {"search": "?q=hamburg"}
# Nested routes: basename -> the URL kwargs of a row's parent(s) in the route prefix.
PARENT_KWARGS = {
    "conversation-message": lambda message: {"conversation_pk": message.conversation_id},
    "conversation-note": lambda note: {"conversation_pk": note.conversation_id},
    "chat-message": lambda message: {"chat_pk": message.chat_id},
    "whatsapp-bot-rule": lambda rule: {"bot_pk": rule.bot_id},
}
REGISTERED = sorted(basename for _, _, basename in router.registry)


def list_url(basename, row) -> str:
    """The list URL of `basename`, with a nested route's parent ids taken from `row`."""
    prefix = next(prefix for prefix, _, name in router.registry if name == basename)
    for key, value in PARENT_KWARGS.get(basename, lambda _: {})(row).items():
        prefix = re.sub(rf"\(\?P<{key}>[^)]*\)", str(value), prefix)
    return f"/api/v1/{prefix}/"


def test_every_api_endpoint_is_covered_by_the_tenancy_test():
    assert sorted(OWNED_ROW) == REGISTERED


@pytest.mark.parametrize("basename", REGISTERED)
def test_another_companys_row_is_404_for_every_method(
    basename, admin_api, admin_user, other_company
):
    foreign = OWNED_ROW[basename](other_company)
    mine = OWNED_ROW[basename](admin_user.company)
    url = f"{list_url(basename, foreign)}{foreign.pk}/"
    missing = f"{list_url(basename, mine)}999999999/"

    for path in (url, missing):
        assert admin_api.get(path).status_code in (404, 405)
        assert admin_api.patch(path, {"name": "x"}, format="json").status_code in (404, 405)
        assert admin_api.delete(path).status_code in (404, 405)
    assert type(foreign).objects.filter(pk=foreign.pk).exists()  # nothing was deleted

    if basename in PARENT_KWARGS:  # a nested list under another company's parent is a 404
        assert admin_api.get(list_url(basename, foreign)).status_code == 404
        assert (
            admin_api.post(list_url(basename, foreign), {"body": "x"}, format="json").status_code
            == 404
        )

    listing = admin_api.get(list_url(basename, mine) + LIST_QUERY.get(basename, ""))
    assert listing.status_code == 200
    ids = {row["id"] for row in listing.json()["results"]}
    assert foreign.pk not in ids
    if basename != "api-token":  # tokens are per user, and `mine` belongs to a colleague
        assert mine.pk in ids


@pytest.mark.parametrize("basename", REGISTERED)
def test_api_requires_authentication(basename, client, other_company):
    response = client.get(list_url(basename, OWNED_ROW[basename](other_company)))
    assert response.status_code in (401, 403)


def test_superuser_without_company_sees_no_tenant_rows(api_for, company):
    from accounts.models import User

    ClientFactory(company=company)
    root = User.objects.create_superuser("root", "root@example.com", "pw")
    response = api_for(root).get("/api/v1/clients/")
    assert response.status_code == 403
