"""Every page of the product, for tests that walk them all: `page_urls` gives the URL of each
page that needs a login, its arguments filled with real objects of the test company."""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from accounts.models import ApiToken

from .factories import (
    AttachmentFactory,
    BotFactory,
    BotRuleFactory,
    BroadcastFactory,
    ChatMemberFactory,
    ClientFactory,
    ConversationFactory,
    DealFactory,
    EmailAccountFactory,
    InstagramAccountFactory,
    MessengerPageFactory,
    PipelineFactory,
    SandboxInboxFactory,
    TelegramAccountFactory,
    WhatsAppNumberFactory,
)

# Not pages, or served by others: the admin, the API, the health check, static files,
# Prometheus metrics (own token), and webhooks (authenticated by signature, tested there).
SKIPPED_PREFIXES = ("admin/", "api/", "health", "static/", "metrics", "webhooks/")
# The only public pages. Anything else served here must redirect anonymous users to login.
# The invitation and password-reset pages are public too: their link is the credential; the
# app's manifest, service worker, offline page and JavaScript catalogue are for everyone.
PUBLIC_URL_NAMES = {
    "login",
    "logout",
    "invitation_accept",
    "password_reset_confirm",
    "password_reset_complete",
    "manifest",
    "service_worker",
    "offline",
    "javascript-catalog",  # the words our scripts show, the login page's too
}


def _page_patterns(patterns=None, prefix="", converters=None):
    """(route, url name, kwarg names) of every URL pattern, includes flattened."""
    if patterns is None:
        patterns = get_resolver().url_patterns
    for entry in patterns:
        route = prefix + str(entry.pattern)
        names = {**(converters or {}), **getattr(entry.pattern, "converters", {})}
        if isinstance(entry, URLResolver):
            yield from _page_patterns(entry.url_patterns, route, names)
        elif isinstance(entry, URLPattern):
            yield route, entry.name, sorted(names)


def _protected_pages():
    return [
        (route, name, kwargs)
        for route, name, kwargs in _page_patterns()
        if not route.startswith(SKIPPED_PREFIXES) and name not in PUBLIC_URL_NAMES
    ]


def _stored_attachment(company):
    from django.core.files.base import ContentFile

    attachment = AttachmentFactory(message__conversation__company=company)
    attachment.file.save("invoice.pdf", ContentFile(b"%PDF-1.4"))
    return attachment


def _mail_with_html(company):
    from .factories import MessageFactory

    conversation = ConversationFactory(
        company=company, source=EmailAccountFactory(company=company, address="mail@acme.test")
    )
    return MessageFactory(
        conversation=conversation,
        external_id="m1@example.org",
        metadata={"subject": "Hello", "html": "<p>Hello</p>"},
    )


def _sandbox_reply(company) -> dict:
    from .factories import MessageFactory

    sandbox = SandboxInboxFactory(company=company)
    conversation = ConversationFactory(company=company, source=sandbox)
    reply = MessageFactory(conversation=conversation, direction="out", status="sent")
    return {"pk": reply.pk, "status": "read"}


def _quarantined_mail(company) -> dict:
    from channels_integrations.models import EmailQuarantine

    item = EmailQuarantine.objects.create(
        account=EmailAccountFactory(company=company), uid=1, reason="test", raw=b"Subject: x\r\n"
    )
    return {"pk": item.account_id, "item_pk": item.pk}


def _canned_reply(company):
    from canned.models import CannedReply

    return CannedReply.objects.create(
        company=company, title="Greeting", shortcut="greet", body="Hi {{client.first_name}}"
    )


def _notification(user):
    from notifications.models import Notification

    return Notification.objects.create(
        company_id=user.company_id, user=user, kind="assigned", subject="A conversation"
    )


def _colleague(company):
    from .factories import UserFactory

    return UserFactory(company=company)


def _invitation(company):
    from datetime import timedelta

    from django.utils import timezone

    from teams.models import Invitation

    return Invitation.objects.create(
        company=company,
        key_hash=Invitation.new_key(),
        expires_at=timezone.now() + timedelta(days=1),
    )


def _team(company, member):
    from teams.models import Team

    team = Team.objects.create(company=company, name="Sales", hours={"0": ["09:00", "18:00"]})
    team.members.add(member)
    return team


def _label(company):
    from triage.models import Label

    return Label.objects.create(company=company, name="VIP", color="green")


def _saved_view(company, owner):
    from triage.models import SavedView

    return SavedView.objects.create(
        company=company, owner=owner, name="Mine open", filters={"assigned": "mine"}
    )


def _export(company, requester):
    """A finished export of a number, its archive on disk."""
    import zipfile

    from exports import services
    from exports.models import ExportJob

    number = WhatsAppNumberFactory(company=company)
    job = ExportJob.objects.create(
        company=company,
        requested_by=requester,
        kind="whatsapp",
        object_id=number.pk,
        subject_name=str(number),
        state=ExportJob.State.DONE,
        file=f"exports/{company.pk}/walk.zip",
        size=22,
    )
    path = services.archive_path(job.file)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("README.txt", "walk")
    return job


@pytest.fixture
def page_urls(company, admin_user):
    """The URL of every protected page, args filled with real objects of `company`."""
    token, _raw = ApiToken.issue(admin_user, "walk")
    chat = ChatMemberFactory(chat__company=company, user=admin_user).chat
    # URL name prefix -> the id of a real object for the pattern's argument.
    mail = _mail_with_html(company)
    ids = {
        # Two ids: an email conversation and its message with HTML (the frame's view).
        "conversation_message_html": {"pk": mail.conversation_id, "message_pk": mail.pk},
        "client_": ClientFactory(company=company).pk,
        "conversation_": ConversationFactory(company=company).pk,
        "chat_": chat.pk,
        "api_token_": token.pk,
        "number_": WhatsAppNumberFactory(company=company).pk,
        "bot_": BotFactory(number__company=company).pk,
        "botrule_": BotRuleFactory(bot__number__company=company).pk,
        "broadcast_": BroadcastFactory(number__company=company).pk,
        "telegram_": TelegramAccountFactory(company=company).pk,
        "email_quarantine_": _quarantined_mail(company),
        "email_": EmailAccountFactory(company=company).pk,
        "meta_page_": MessengerPageFactory(company=company).pk,
        "meta_instagram_": InstagramAccountFactory(company=company).pk,
        "attachment_": _stored_attachment(company).pk,
        "deal_": DealFactory(company=company, owner=admin_user).pk,
        "pipeline_": PipelineFactory(company=company).pk,
        "report_csv": {"name": "by-channel"},
        "canned_reply_": _canned_reply(company).pk,
        "notification_": _notification(admin_user).pk,
        "member_": _colleague(company).pk,
        "invitation_": _invitation(company).pk,
        "team_": _team(company, admin_user).pk,
        "label_": _label(company).pk,
        "savedview_": _saved_view(company, admin_user).pk,
        "export_": _export(company, admin_user).pk,
        "sandbox_mark": _sandbox_reply(company),
    }
    urls = {}
    for route, name, kwargs in _protected_pages():
        assert name, f"page route {route!r} needs a URL name"
        values = {}
        if kwargs:
            match = [pk for prefix, pk in ids.items() if name.startswith(prefix)]
            if not match:
                pytest.fail(f"test_pages: add an object for the arguments of URL {name!r}")
            values = match[0] if isinstance(match[0], dict) else dict.fromkeys(kwargs, match[0])
        urls[name] = reverse(name, kwargs=values)
    return urls
