"""What a newcomer meets in the first hour (issue 20): errors in sentences with the detail
folded, forms that keep typed secrets without echoing them, styled error pages, a refused
empty team chat, a broadcast that reached nobody shown as failed, every settings area linked."""

import pytest
from django.urls import reverse
from django.utils import translation

from channels_integrations.models import Broadcast, TelegramAccount
from channels_integrations.whatsapp.broadcasts import _finish_if_done
from crm.templatetags.error_tags import explain

from .factories import BroadcastFactory, BroadcastRecipientFactory, UserFactory

pytestmark = pytest.mark.django_db

API_HASH = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    "raw",
    [
        "failed to dial whatsapp web websocket: dial tcp: lookup web.whatsapp.com: no such host",
        "SMTP smtp.example.org:587 failed (gaierror)",
        "Telegram refused: IncompleteReadError",
    ],
)
def test_technical_errors_become_a_sentence_with_the_detail_kept(raw):
    with translation.override("en"):
        sentence, detail = explain(raw)
    assert sentence.startswith("Could not reach the service over the network.")
    assert "tries again" in sentence
    assert detail == raw


def test_a_sentence_stays_as_it_is():
    # In English; a reader in another language gets it explained (tests/test_i18n.py).
    with translation.override("en"):
        shown = explain("The page access token is invalid or expired: update it in Settings.")
    assert shown == ("The page access token is invalid or expired: update it in Settings.", "")


def test_the_settings_page_shows_the_sentence_and_folds_the_detail(client, admin_user):
    from .factories import TelegramAccountFactory

    TelegramAccountFactory(
        company=admin_user.company, last_error="Telegram refused: IncompleteReadError"
    )
    client.force_login(admin_user)
    page = client.get(reverse("settings")).content.decode()
    assert "Could not reach the service over the network." in page
    assert (
        '<details class="error-detail"><summary>Details</summary><pre>Telegram refused: IncompleteReadError</pre>'
        in page
    )
    # Every channel's settings area is reachable from here.
    for name in ("numbers", "telegram_accounts", "email_accounts", "meta_accounts", "sandbox"):
        assert f'href="{reverse(name)}' in page, name


def test_a_typed_secret_survives_another_fields_error_without_reaching_the_page(client, admin_user):
    client.force_login(admin_user)
    form = {
        "name": "Sales",
        "phone": "+4915112345678",
        "api_id": "not-a-number",
        "api_hash": API_HASH,
    }
    response = client.post(reverse("telegram_create"), form)
    assert response.status_code == 200
    page = response.content.decode()
    assert API_HASH not in page  # never echoed into the HTML
    assert "Kept from your last attempt" in page
    assert not TelegramAccount.objects.exists()

    # Fixing the other field is enough: the kept api_hash is used.
    response = client.post(reverse("telegram_create"), {**form, "api_id": "12345", "api_hash": ""})
    assert response.status_code == 302
    account = TelegramAccount.objects.get()
    assert account.api_hash == API_HASH and account.api_id == 12345
    # Once saved, nothing is kept: a new form asks again.
    page = client.get(reverse("telegram_create")).content.decode()
    assert "Kept from your last attempt" not in page


def test_a_new_chat_with_nobody_else_is_refused_in_words(api_for, admin_user):
    response = api_for(admin_user).post(
        "/api/v1/chats/", {"name": "", "members": []}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["members"] == [
        "Choose at least one colleague to chat with: a chat needs someone besides you."
    ]


def test_a_broadcast_that_reached_nobody_has_failed():
    broadcast = BroadcastFactory(status=Broadcast.Status.SENDING)
    BroadcastRecipientFactory.create_batch(3, broadcast=broadcast, status="failed")
    assert _finish_if_done(broadcast)
    broadcast.refresh_from_db()
    assert broadcast.status == Broadcast.Status.FAILED

    partly = BroadcastFactory(status=Broadcast.Status.SENDING)
    BroadcastRecipientFactory(broadcast=partly, status="failed")
    BroadcastRecipientFactory(broadcast=partly, status="sent")
    assert _finish_if_done(partly)
    partly.refresh_from_db()
    assert partly.status == Broadcast.Status.COMPLETED


@pytest.fixture
def production_errors(settings):
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["testserver"]


def test_error_pages_are_styled_with_navigation_and_the_api_keeps_json(
    client, admin_user, production_errors
):
    client.force_login(admin_user)
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    page = response.content.decode()
    assert "This page does not exist" in page
    assert 'class="nav"' in page and 'href="/inbox/"' in page
    assert "app.css" in page

    api = client.get("/api/v1/no-such-thing/")
    assert api.status_code == 404 and api.json() == {"detail": "Not found."}


def test_the_403_page_says_what_to_do(client, production_errors):
    agent = UserFactory(role="agent")
    client.force_login(agent)
    response = client.get(reverse("telegram_create"))
    assert response.status_code == 403
    page = response.content.decode()
    assert "You may not open this page" in page and "Ask a company admin" in page


def test_the_500_page_renders_without_a_request():
    from django.template.loader import render_to_string

    page = render_to_string("500.html")
    assert "Something went wrong on our side" in page and 'href="/inbox/"' in page


def test_every_page_has_a_favicon_and_a_manifest(client, admin_user):
    client.force_login(admin_user)
    page = client.get(reverse("inbox")).content.decode()
    assert 'rel="icon"' in page and 'rel="manifest"' in page and 'class="skip-link"' in page
