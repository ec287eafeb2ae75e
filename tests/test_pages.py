"""Server-rendered pages: login protection on every page, tenant scoping, forms through services,
and secrets never rendered."""

import re
from urllib.parse import parse_qs, urlparse

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import ApiToken, Role, User
from channels_integrations import selectors as channel_selectors
from channels_integrations.models import (
    EmailAccount,
    TelegramAccount,
    WhatsAppNumber,
)
from crm import selectors as crm_selectors
from crm.fields import secret_field_names
from crm.models import Client
from messaging.models import Conversation

from . import page_walk
from .factories import (
    ChatMemberFactory,
    ChatMessageFactory,
    ClientFactory,
    ConversationFactory,
    EmailAccountFactory,
    MessageFactory,
    ReactionFactory,
    TeamChatFactory,
    TelegramAccountFactory,
    UserFactory,
    WhatsAppNumberFactory,
)

pytestmark = pytest.mark.django_db

# ---------------------------------------------------------------- every page needs a login

page_urls = page_walk.page_urls  # the fixture


def test_the_walk_finds_the_pages(page_urls):
    # Guards against a walk that silently finds nothing.
    expected = {
        "dashboard",
        "clients",
        "client_create",
        "client_detail",
        "client_edit",
        "inbox",
        "conversation_detail",
        "chats",
        "chat_detail",
        "settings",
        "api_tokens",
        "api_token_revoke",
        "password_change",
        "password_change_done",
    }
    assert expected <= set(page_urls)


def test_every_page_redirects_anonymous_users_to_login(client, page_urls):
    login = reverse("login")
    for name, url in page_urls.items():
        response = client.get(url)
        assert response.status_code == 302, f"{name} ({url}) is served without login"
        location = urlparse(response["Location"])
        assert location.path == login, name
        assert parse_qs(location.query)["next"] == [url], name


def test_every_page_renders_for_a_member(client, admin_user, page_urls):
    client.force_login(admin_user)
    for name, url in page_urls.items():
        response = client.get(url)
        # 405: POST-only actions (revoking a token).
        assert response.status_code in (200, 405), f"{name} ({url}): {response.status_code}"


def test_superuser_without_company_is_sent_to_the_admin(client, page_urls):
    superuser = User.objects.create_superuser("root", "root@example.com", "pw-root-123")
    client.force_login(superuser)
    for name, url in page_urls.items():
        response = client.get(url)
        assert response.status_code == 302, name
        assert response["Location"] == reverse("admin:index"), name


def test_anonymous_htmx_request_reloads_to_login_instead_of_swapping(client):
    response = client.get(reverse("clients"), {"q": "x"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert response["HX-Redirect"].startswith(reverse("login") + "?next=")


def test_page_shell_has_navigation_user_and_htmx(client, admin_user):
    admin_user.first_name, admin_user.last_name = "Alice", "Admin"
    admin_user.save()
    client.force_login(admin_user)
    content = client.get(reverse("dashboard")).content.decode()
    for url_name in ("inbox", "chats", "clients", "settings"):
        assert f'href="{reverse(url_name)}"' in content
    assert "Alice Admin" in content and "Acme" in content and "Admin" in content
    assert f'action="{reverse("logout")}"' in content
    assert "django_htmx/htmx-2.min.js" in content
    assert 'hx-headers=\'{"X-CSRFToken": "' in content


# ---------------------------------------------------------------- dashboard


@pytest.fixture
def dashboard_data(company, other_company, admin_user):
    line = WhatsAppNumberFactory(company=company, status=WhatsAppNumber.Status.CONNECTED)
    WhatsAppNumberFactory(company=company)
    WhatsAppNumberFactory(company=company, status=WhatsAppNumber.Status.DELETING)  # not counted
    TelegramAccountFactory(company=company, status=TelegramAccount.Status.CONNECTED)
    for _ in range(2):
        TelegramAccountFactory(company=company)
    EmailAccountFactory(company=company, is_active=False)
    telegram = TelegramAccountFactory(company=company)
    email = EmailAccountFactory(company=company, status=EmailAccount.Status.ERROR)
    # 5 conversations (3 open WhatsApp, 1 open Telegram, 1 closed email), each with a client.
    for unread in (2, 0, 0):
        ConversationFactory(company=company, source=line, unread_count=unread)
    ConversationFactory(company=company, source=telegram, unread_count=1)
    ConversationFactory(
        company=company,
        source=email,
        status=Conversation.Status.CLOSED,
    )
    ClientFactory(company=company)  # a sixth client, without conversation
    ChatMemberFactory(chat__company=company, user=admin_user)
    TeamChatFactory(company=company)  # not a member
    # Another company's rows count for nobody here.
    WhatsAppNumberFactory(company=other_company, status=WhatsAppNumber.Status.CONNECTED)
    for _ in range(4):
        ConversationFactory(company=other_company, unread_count=3)


def test_dashboard_counts(admin_user, dashboard_data):
    counts = crm_selectors.dashboard_counts(admin_user)
    assert counts["whatsapp"] == {"total": 2, "connected": 1}
    assert counts["telegram"] == {"total": 4, "connected": 1}
    assert counts["email"] == {"total": 2, "active": 1, "failing": 1}
    assert counts["open_conversations"] == 4
    assert counts["open_by_platform"] == [
        ("WhatsApp", "whatsapp", 3),
        ("Telegram", "telegram", 1),
        ("Email", "email", 0),
        ("Messenger", "facebook", 0),
        ("Instagram", "instagram", 0),
        ("Sandbox", "sandbox", 0),
    ]
    assert counts["unread_conversations"] == 2
    assert counts["clients"] == 6
    assert counts["team_chats"] == 1


def test_dashboard_takes_a_constant_number_of_queries(admin_user, dashboard_data):
    with CaptureQueriesContext(connection) as queries:
        crm_selectors.dashboard_counts(admin_user)
    assert len(queries) == 6


def test_login_redirects_to_dashboard_showing_the_company_counts(
    client, admin_user, dashboard_data
):
    response = client.post(
        reverse("login"), {"username": admin_user.username, "password": "correct-horse-battery"}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard")
    content = client.get(reverse("dashboard")).content.decode()
    assert "1<small>/2</small>" in content  # WhatsApp connected/total
    assert "1<small>/4</small>" in content  # Telegram
    assert '<span class="stat-value">4</span>' in content  # open conversations
    assert '<strong data-stat="open-whatsapp">3</strong>' in content
    assert '<span class="stat-value">2</span>' in content  # unread
    assert '<span class="stat-value">6</span>' in content  # clients


# ---------------------------------------------------------------- clients


@pytest.fixture
def member(client, admin_user):
    client.force_login(admin_user)
    return client


def _client_form(**overrides):
    data = {
        "name": "Jane Roe",
        "phone": "+49 151 2345 6789",
        "email": "Jane@Example.com",
        "telegram_user_id": "",
        "telegram_username": "",
        "notes": "VIP",
    }
    data.update(overrides)
    return data


def test_create_client_normalises_phone_to_e164(member, company):
    response = member.post(reverse("client_create"), _client_form())
    created = Client.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("client_detail", args=[created.pk])
    assert created.company == company
    assert Client.objects.filter(phone="+4915123456789").exists()
    assert created.email == "jane@example.com"
    page = member.get(response["Location"]).content.decode()
    assert "created" in page and "+4915123456789" in page


def test_create_client_with_invalid_phone_shows_field_error_and_saves_nothing(member):
    response = member.post(reverse("client_create"), _client_form(phone="12345"))
    assert response.status_code == 200
    assert "phone" in response.context["form"].errors
    assert 'id="id_phone_error"' in response.content.decode()
    assert not Client.objects.exists()


def test_duplicate_phone_in_same_company_is_an_error_on_the_phone_field(member, company):
    ClientFactory(company=company, phone="+4915123456789")
    response = member.post(reverse("client_create"), _client_form())
    assert response.status_code == 200
    assert response.context["form"].errors["phone"] == [
        "Another client in your company has this phone."
    ]
    assert "Another client in your company has this phone." in response.content.decode()
    assert Client.objects.count() == 1


def test_same_phone_in_another_company_is_fine(member, company, other_company):
    ClientFactory(company=other_company, phone="+4915123456789")
    response = member.post(reverse("client_create"), _client_form())
    assert response.status_code == 302
    assert Client.objects.filter(company=company, phone="+4915123456789").exists()


def test_edit_client(member, company):
    client = ClientFactory(company=company, name="Old", phone="+4915100000001")
    form = member.get(reverse("client_edit", args=[client.pk]))
    assert 'value="+4915100000001"' in form.content.decode()
    response = member.post(
        reverse("client_edit", args=[client.pk]),
        _client_form(name="New", phone="+44 20 7946 0958", telegram_username="@newbie"),
    )
    assert response.status_code == 302
    client.refresh_from_db()
    assert client.name == "New"
    assert str(client.phone) == "+442079460958"
    assert client.telegram_username == "newbie"


def test_edit_client_duplicate_email_keeps_the_row_unchanged(member, company):
    ClientFactory(company=company, email="taken@example.com")
    client = ClientFactory(company=company, name="Keep", email="")
    response = member.post(
        reverse("client_edit", args=[client.pk]),
        _client_form(name="Changed", email="TAKEN@example.com"),
    )
    assert response.status_code == 200
    assert "email" in response.context["form"].errors
    client.refresh_from_db()
    assert client.name == "Keep"


def test_another_companys_client_is_404(member, other_company):
    theirs = ClientFactory(company=other_company)
    assert member.get(reverse("client_detail", args=[theirs.pk])).status_code == 404
    assert member.get(reverse("client_edit", args=[theirs.pk])).status_code == 404
    response = member.post(reverse("client_edit", args=[theirs.pk]), _client_form(name="Hijack"))
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.name != "Hijack"


def test_client_detail_lists_its_conversations(member, company):
    conversation = ConversationFactory(company=company, last_message_preview="Where is my parcel?")
    ConversationFactory(company=company, last_message_preview="Somebody else's")
    content = member.get(reverse("client_detail", args=[conversation.client.pk])).content.decode()
    assert "Where is my parcel?" in content
    assert "Somebody else&#x27;s" not in content and "Somebody else's" not in content


def test_client_list_shows_only_own_company(member, company, other_company):
    ClientFactory(company=company, name="Ours Ltd")
    ClientFactory(company=other_company, name="Theirs Inc")
    content = member.get(reverse("clients")).content.decode()
    assert "Ours Ltd" in content
    assert "Theirs Inc" not in content


def test_client_search_by_name_phone_and_email(member, company, other_company):
    ClientFactory(company=company, name="Anna Schmidt", phone="+4915199990000", email="anna@x.de")
    ClientFactory(company=company, name="Bob Jones", phone="+4915188880000", email="bob@y.com")
    ClientFactory(company=company, name="Carla", phone="", telegram_username="carla_tg")
    ClientFactory(company=other_company, name="Anna Other")

    def names(query):
        response = member.get(reverse("clients"), {"q": query})
        return {c.name for c in response.context["page"].object_list}

    assert names("anna") == {"Anna Schmidt"}
    assert names("151 9999") == {"Anna Schmidt"}
    assert names("+4915188") == {"Bob Jones"}
    assert names("Y.COM") == {"Bob Jones"}
    assert names("@carla_") == {"Carla"}
    assert names("@") == {"Anna Schmidt", "Bob Jones"}  # their emails, not every client
    assert names("") == {"Anna Schmidt", "Bob Jones", "Carla"}


def test_client_search_with_htmx_returns_only_the_table(member, company):
    ClientFactory(company=company, name="Anna Schmidt")
    response = member.get(reverse("clients"), {"q": "anna"}, HTTP_HX_REQUEST="true")
    content = response.content.decode()
    assert "Anna Schmidt" in content
    assert "<html" not in content
    assert "HX-Request" in response["Vary"]
    full = member.get(reverse("clients"), {"q": "anna"}).content.decode()
    assert "<html" in full and 'hx-target="#client-results"' in full


def test_client_list_is_paginated_by_50(member, company):
    ClientFactory.create_batch(51, company=company)
    first = member.get(reverse("clients"))
    assert len(first.context["page"].object_list) == 50
    second = member.get(reverse("clients"), {"page": 2})
    assert len(second.context["page"].object_list) == 1


# ---------------------------------------------------------------- settings and API tokens

SECRETS = [
    "EAAG-secret-access-token",
    "app-secret-value",
    "verify-token-value",
    "0123456789abcdef0123456789abcdef",
    "1BVtsOKABu-secret-session-string",
    "mailbox-secret-password",
]


def test_settings_never_renders_secrets(member, company):
    number = WhatsAppNumberFactory(company=company, display_name="Sales line")
    telegram = TelegramAccountFactory(company=company, name="Support TG")
    email = EmailAccountFactory(company=company, address="help@acme.test")
    # The factories' secrets are stored encrypted; make sure they really are these values.
    assert WhatsAppNumber.objects.get(pk=number.pk).cloud_access_token == SECRETS[0]
    assert TelegramAccount.objects.get(pk=telegram.pk).session_string == SECRETS[4]
    assert EmailAccount.objects.get(pk=email.pk).password == SECRETS[5]

    content = member.get(reverse("settings")).content.decode()
    assert "Sales line" in content and "Support TG" in content and "help@acme.test" in content
    for secret in SECRETS:
        assert secret not in content
    assert "not set" not in content  # every secret here is set, and the page says so
    assert ">set<" in content


def test_settings_lists_do_not_even_load_secrets(admin_user, company):
    WhatsAppNumberFactory(company=company)
    TelegramAccountFactory(company=company)
    EmailAccountFactory(company=company)
    lists = {
        WhatsAppNumber: channel_selectors.whatsapp_numbers(admin_user),
        TelegramAccount: channel_selectors.telegram_accounts(admin_user),
        EmailAccount: channel_selectors.email_accounts(admin_user),
    }
    for model, rows in lists.items():
        row = rows.get()
        assert set(secret_field_names(model)) <= row.get_deferred_fields()
        stored = [name for name in secret_field_names(model) if name != "login_state"]
        assert all(getattr(row, f"{name}_set") for name in stored)  # (no log-in in progress)


def test_settings_shows_only_own_company_channels(member, other_company):
    WhatsAppNumberFactory(company=other_company, display_name="Their line")
    EmailAccountFactory(company=other_company, address="their@globex.test")
    content = member.get(reverse("settings")).content.decode()
    assert "Their line" not in content and "their@globex.test" not in content


def test_members_are_shown_to_admins_only(client, admin_user, agent_user, other_company):
    UserFactory(company=other_company, username="stranger")
    client.force_login(admin_user)
    content = client.get(reverse("settings")).content.decode()
    assert 'id="members"' in content
    assert agent_user.email in content
    assert "stranger" not in content

    client.force_login(agent_user)
    content = client.get(reverse("settings")).content.decode()
    assert 'id="members"' not in content
    assert admin_user.email not in content


def test_api_token_is_shown_once_authenticates_and_revoke_stops_it(member, admin_user):
    response = member.post(reverse("api_tokens"), {"name": "reporting"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    content = response.content.decode()
    raw = re.search(r'value="(sb_[A-Za-z0-9_\-]+)"', content).group(1)
    assert content.count(raw) == 1
    token = ApiToken.objects.get(user=admin_user)
    assert token.name == "reporting"
    assert raw not in member.get(reverse("api_tokens")).content.decode()

    api = APIClient()
    me = api.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert me.status_code == 200
    assert me.json()["username"] == admin_user.username

    response = member.post(reverse("api_token_revoke", args=[token.pk]))
    assert response.status_code == 302
    assert not ApiToken.objects.exists()
    assert api.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 401


def test_token_name_is_required(member):
    response = member.post(reverse("api_tokens"), {"name": ""})
    assert response.status_code == 200
    assert "name" in response.context["form"].errors
    assert not ApiToken.objects.exists()


def test_cannot_revoke_someone_elses_token(member, agent_user):
    token, _raw = ApiToken.issue(agent_user, "theirs")
    assert member.post(reverse("api_token_revoke", args=[token.pk])).status_code == 404
    assert ApiToken.objects.filter(pk=token.pk).exists()


def test_revoke_needs_post(member, admin_user):
    token, _raw = ApiToken.issue(admin_user, "mine")
    assert member.get(reverse("api_token_revoke", args=[token.pk])).status_code == 405
    assert ApiToken.objects.filter(pk=token.pk).exists()


# ---------------------------------------------------------------- inbox


def test_inbox_lists_only_own_company_conversations(member, company, other_company):
    ConversationFactory(company=company, last_message_preview="Ours: hello", unread_count=3)
    ConversationFactory(company=other_company, last_message_preview="Theirs: hello")
    content = member.get(reverse("inbox")).content.decode()
    assert "Ours: hello" in content
    assert "Theirs: hello" not in content
    assert 'class="count"' in content  # the unread badge


def test_inbox_filters_by_platform_and_status(member, company):
    ConversationFactory(company=company, last_message_preview="wa open")
    ConversationFactory(
        company=company, last_message_preview="wa closed", status=Conversation.Status.CLOSED
    )
    ConversationFactory(
        company=company,
        source=TelegramAccountFactory(company=company),
        last_message_preview="tg open",
    )

    def previews(**params):
        response = member.get(reverse("inbox"), params)
        return {c.last_message_preview for c in response.context["page"].object_list}

    # The inbox shows open conversations unless asked for another state (or all of them).
    assert previews() == {"wa open", "tg open"}
    assert previews(status="all") == {"wa open", "wa closed", "tg open"}
    assert previews(platform="telegram") == {"tg open"}
    assert previews(status="closed") == {"wa closed"}
    assert previews(platform="whatsapp", status="open") == {"wa open"}
    assert previews(platform="bogus", status="all") == {"wa open", "wa closed", "tg open"}


def test_inbox_queries_do_not_grow_with_conversations(member, company, admin_user):
    def count_queries():
        with CaptureQueriesContext(connection) as queries:
            assert member.get(reverse("inbox")).status_code == 200
        return len(queries)

    ConversationFactory(company=company, assignee=admin_user)
    few = count_queries()
    for _ in range(5):
        ConversationFactory(company=company, assignee=UserFactory(company=company))
    assert count_queries() == few


def test_conversation_detail_shows_messages_oldest_first(member, company, other_company):
    conversation = ConversationFactory(company=company)
    MessageFactory(conversation=conversation, body="first message")
    MessageFactory(conversation=conversation, body="second message")
    content = member.get(reverse("conversation_detail", args=[conversation.pk])).content.decode()
    assert content.index("first message") < content.index("second message")
    # The source account is named, its secrets are not shown.
    assert str(conversation.source.phone) in content
    assert "EAAG-secret-access-token" not in content

    theirs = ConversationFactory(company=other_company)
    assert member.get(reverse("conversation_detail", args=[theirs.pk])).status_code == 404


# ---------------------------------------------------------------- team chats


def test_chat_list_shows_only_chats_the_user_is_in(member, company, other_company, admin_user):
    mine = ChatMemberFactory(chat__company=company, chat__name="Night shift", user=admin_user).chat
    ChatMemberFactory.create_batch(2, chat=mine)
    ChatMessageFactory(chat=mine)
    TeamChatFactory(company=company, name="Managers only")
    ChatMemberFactory(chat__company=other_company, chat__name="Globex team")

    response = member.get(reverse("chats"))
    chats = list(response.context["chats"])
    assert [c.name for c in chats] == ["Night shift"]
    assert chats[0].member_count == 3
    assert chats[0].last_message_at is not None
    content = response.content.decode()
    assert "Managers only" not in content and "Globex team" not in content


def test_chat_detail_for_members_only(client, company, other_company, admin_user, agent_user):
    chat = ChatMemberFactory(chat__company=company, user=admin_user).chat
    message = ChatMessageFactory(chat=chat, author=admin_user, body="Who takes Mrs. Smith?")
    ReactionFactory(message=message, user=admin_user, emoji="👍")
    ReactionFactory(message=message, user=UserFactory(company=company), emoji="👍")

    client.force_login(admin_user)
    content = client.get(reverse("chat_detail", args=[chat.pk])).content.decode()
    assert "Who takes Mrs. Smith?" in content
    assert admin_user.display_name in content
    assert "👍 2" in content

    client.force_login(agent_user)  # same company, not a member
    assert client.get(reverse("chat_detail", args=[chat.pk])).status_code == 404
    theirs = ChatMemberFactory(chat__company=other_company).chat
    client.force_login(admin_user)
    assert client.get(reverse("chat_detail", args=[theirs.pk])).status_code == 404


def test_agent_can_use_the_pages(client, agent_user, company):
    ClientFactory(company=company, name="Shared client")
    client.force_login(agent_user)
    assert "Shared client" in client.get(reverse("clients")).content.decode()
    assert client.get(reverse("settings")).status_code == 200
    assert agent_user.role == Role.AGENT
