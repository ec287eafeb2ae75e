"""One status vocabulary per object: the page, the API (`status_label` next to the `status`
code) and the realtime event say the same words for the same object, in each reader's
language (issue 20)."""

import re

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.urls import reverse
from django.utils import translation
from rest_framework.test import APIClient

from accounts.models import ApiToken, Role
from channels_integrations.models import TelegramAccount
from crm.asgi import application
from crm.vocabulary import status_label
from messaging.models import Conversation, Message
from messaging.services import states
from messaging.services.outbox import record_delivery_status

from .factories import (
    ConversationFactory,
    DealFactory,
    MessageFactory,
    TelegramAccountFactory,
    UserFactory,
    WhatsAppNumberFactory,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _words(model, code: str, language: str) -> str:
    with translation.override(language):
        return str(model.Status(code).label)


def _api(user) -> APIClient:
    api = APIClient()
    api.force_authenticate(user=user)
    return api


def _pill(html: str, role: str = "status") -> list[str]:
    """The texts of the status pills (data-role="status") of a page."""
    found = re.findall(rf'data-role="{role}"[^>]*>([^<]*)<', html)
    return [text.strip() for text in found]


async def _socket(token: str):
    communicator = WebsocketCommunicator(application, f"/ws/?token={token}")
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    assert (await communicator.receive_json_from(timeout=5))["event"] == "welcome"
    return communicator


async def _next(communicator, event: str) -> dict:
    while True:
        frame = await communicator.receive_json_from(timeout=5)
        if frame["event"] == event:
            return frame["data"]


def test_conversation_status_reads_the_same_on_the_page_the_api_and_the_event(client, company):
    english = UserFactory(company=company, role=Role.ADMIN, language="en")
    russian = UserFactory(company=company, role=Role.ADMIN, language="ru")
    conversation = ConversationFactory(company=company)
    closed = {lang: _words(Conversation, "closed", lang) for lang in ("en", "ru")}
    assert closed["en"] == "Closed" and closed["ru"] != "Closed"
    tokens = [ApiToken.issue(user, "ws")[1] for user in (english, russian)]

    async def run():
        sockets = {"en": await _socket(tokens[0]), "ru": await _socket(tokens[1])}
        await sync_to_async(states.set_conversation_status)(english, conversation, "closed")
        heard = {
            lang: await _next(sockets[lang], "conversation.status_changed") for lang in sockets
        }
        for communicator in sockets.values():
            await communicator.disconnect()
        return heard

    heard = async_to_sync(run)()
    for language, user in (("en", english), ("ru", russian)):
        assert heard[language]["status"] == "closed"  # the code clients depend on stays
        assert heard[language]["status_label"] == closed[language]
        was = _words(Conversation, "open", language)  # and the words for where it came from
        assert (heard[language]["previous_status"], heard[language]["previous_status_label"]) == (
            "open",
            was,
        )
        api = _api(user).get(f"/api/v1/conversations/{conversation.pk}/").json()
        assert (api["status"], api["status_label"]) == ("closed", closed[language])
        listed = _api(user).get("/api/v1/conversations/?status=closed").json()["results"]
        assert [row["status_label"] for row in listed] == [closed[language]]
        client.force_login(user)
        page = client.get(reverse("conversation_detail", args=[conversation.pk])).content.decode()
        assert closed[language] in _pill(page)[0]


def test_message_status_reads_the_same_on_the_page_the_api_and_the_event(client, company):
    russian = UserFactory(company=company, role=Role.ADMIN, language="ru")
    ukrainian = UserFactory(company=company, role=Role.ADMIN, language="uk")
    conversation = ConversationFactory(company=company)
    message = MessageFactory(
        conversation=conversation,
        direction=Message.Direction.OUTBOUND,
        status=Message.Status.QUEUED,
        author=russian,
    )
    tokens = [ApiToken.issue(user, "ws")[1] for user in (russian, ukrainian)]

    async def run():
        sockets = {"ru": await _socket(tokens[0]), "uk": await _socket(tokens[1])}
        await sync_to_async(record_delivery_status)(message.pk, Message.Status.DELIVERED)
        heard = {lang: await _next(sockets[lang], "message.updated") for lang in sockets}
        for communicator in sockets.values():
            await communicator.disconnect()
        return heard

    heard = async_to_sync(run)()
    for language, user in (("ru", russian), ("uk", ukrainian)):
        words = _words(Message, "delivered", language)
        assert words != "Delivered"
        assert (heard[language]["status"], heard[language]["status_label"]) == ("delivered", words)
        rows = _api(user).get(f"/api/v1/conversations/{conversation.pk}/messages/").json()
        row = next(row for row in rows["results"] if row["id"] == message.pk)
        assert (row["status"], row["status_label"]) == ("delivered", words)
        client.force_login(user)
        page = client.get(reverse("conversation_detail", args=[conversation.pk])).content.decode()
        assert words in _pill(page)


def test_a_socket_without_a_chosen_language_hears_the_browsers(company):
    """No language on the profile: the words follow Accept-Language, as pages do."""
    user = UserFactory(company=company, role=Role.ADMIN, language="")
    conversation = ConversationFactory(company=company)
    token = ApiToken.issue(user, "ws")[1]

    async def run():
        communicator = WebsocketCommunicator(
            application, f"/ws/?token={token}", headers=[(b"accept-language", b"uk,en;q=0.5")]
        )
        assert (await communicator.connect(timeout=5))[0]
        await communicator.receive_json_from(timeout=5)
        await sync_to_async(states.set_conversation_status)(user, conversation, "pending")
        data = await _next(communicator, "conversation.status_changed")
        await communicator.disconnect()
        return data

    data = async_to_sync(run)()
    assert data["status_label"] == _words(Conversation, "pending", "uk")


def test_a_connection_reads_the_same_on_its_page_and_in_the_api(client, company):
    """Connections show more than their column (deactivated, not logged in): one function."""
    admin = UserFactory(company=company, role=Role.ADMIN, language="ru")
    off = TelegramAccountFactory(company=company, is_active=False, status="connected")
    with translation.override("ru"):
        deactivated = str(status_label(off))
    assert deactivated not in ("Deactivated", "Connected", "Подключён")
    api = _api(admin).get(f"/api/v1/telegram/accounts/{off.pk}/").json()
    assert (api["status"], api["status_label"]) == ("connected", deactivated)
    client.force_login(admin)
    for name in ("telegram_accounts", "settings"):
        assert deactivated in client.get(reverse(name)).content.decode()
    never = TelegramAccountFactory(company=company, session_string="", status="new")
    assert not TelegramAccount.objects.get(pk=never.pk).session_string
    api = _api(admin).get(f"/api/v1/telegram/accounts/{never.pk}/").json()
    with translation.override("ru"):
        assert (
            api["status_label"] == str(status_label(never)) != str(TelegramAccount.Status.NEW.label)
        )


def test_a_notification_title_is_in_the_recipients_language(company):
    """The actor writes in English; the bell of a Russian colleague says it in Russian."""
    from notifications.models import Kind
    from notifications.services import notify

    actor = UserFactory(company=company, language="en")
    russian = UserFactory(company=company, language="ru")
    token = ApiToken.issue(russian, "ws")[1]

    async def run():
        communicator = await _socket(token)
        with_english = sync_to_async(_notify_in_english)
        await with_english(notify, Kind.MENTIONED, russian, actor, company)
        data = await _next(communicator, "notification.created")
        await communicator.disconnect()
        return data

    data = async_to_sync(run)()
    with translation.override("ru"):
        expected = translation.gettext("%(actor)s mentioned you in “%(subject)s”") % {
            "actor": actor.display_name,
            "subject": "Заказ 42",
        }
    assert data["title"] == expected and "mentioned" not in expected


def _notify_in_english(notify, kind, recipient, actor, company):
    with translation.override("en"):
        notify(kind, [recipient.pk], company_id=company.pk, subject="Заказ 42", actor_id=actor.pk)


def test_a_token_client_reads_errors_and_words_in_the_users_language(client, company):
    """An API token of a Russian-speaking user: validation errors and status words in Russian,
    as their pages are (the token is checked after the middleware chose a language)."""
    user = UserFactory(company=company, role=Role.ADMIN, language="ru")
    conversation = ConversationFactory(company=company)
    token = ApiToken.issue(user, "script")[1]
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    api = APIClient()
    row = api.get(f"/api/v1/conversations/{conversation.pk}/", **headers).json()
    assert row["status_label"] == _words(Conversation, "open", "ru")
    refused = api.post(f"/api/v1/conversations/{conversation.pk}/status/", {}, **headers)
    assert refused.status_code == 400
    with translation.override("ru"):
        required = translation.gettext("This field is required.")
    assert refused.json()["status"] == [required] and required != "This field is required."


def test_a_deal_status_reads_the_same_on_its_page_the_api_and_the_event(client, company):
    """Won, lost, open: the board's event, the API and the deal page (its history too, which
    showed the codes "open → won") say the reader's words."""
    from deals.models import Deal
    from deals.services import close_deal

    russian = UserFactory(company=company, role=Role.ADMIN, language="ru")
    deal = DealFactory(company=company)
    won, was = _words(Deal, "won", "ru"), _words(Deal, "open", "ru")
    assert won != "Won" and was != "Open"
    token = ApiToken.issue(russian, "ws")[1]

    async def run():
        communicator = await _socket(token)
        await sync_to_async(close_deal)(russian, deal, "won")
        data = await _next(communicator, "deal.updated")
        await communicator.disconnect()
        return data

    heard = async_to_sync(run)()
    assert (heard["status"], heard["status_label"]) == ("won", won)
    api = _api(russian).get(f"/api/v1/deals/{deal.pk}/").json()
    assert (api["status"], api["status_label"]) == ("won", won)
    listed = _api(russian).get("/api/v1/deals/?status=won").json()["results"]
    assert [row["status_label"] for row in listed] == [won]
    client.force_login(russian)
    page = client.get(reverse("deal_detail", args=[deal.pk])).content.decode()
    assert won in re.search(r'id="deal-status">([^<]*)<', page).group(1)
    assert f"{was} → {won}" in page and "open → won" not in page


def test_a_whatsapp_sessions_health_is_a_sentence_in_the_readers_language(company):
    """The session API's `health` was English for everyone; it follows the reader now."""
    from channels_integrations.models import WhatsAppSession
    from channels_integrations.whatsapp import sessions

    number = WhatsAppNumberFactory(company=company, provider="web")
    session = WhatsAppSession.objects.create(number=number, status="logged_out")
    answers = {}
    for language in ("en", "ru", "uk"):
        reader = UserFactory(company=company, role=Role.ADMIN, language=language)
        answer = _api(reader).get(f"/api/v1/whatsapp/numbers/{number.pk}/session/health/")
        assert answer.status_code == 503 and answer.json()["healthy"] is False
        answers[language] = answer.json()["health"]
        with translation.override(language):
            assert answers[language] == str(sessions.health(session)[1])
            logged_out = str(WhatsAppSession.Status.LOGGED_OUT.label)
        assert logged_out in answers[language]
    assert len(set(answers.values())) == 3  # three languages, three sentences
