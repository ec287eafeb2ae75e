"""Reactions on inbox messages: agents react to a customer's message through the API and the
page, the reaction goes out through the channel boundary (the Graph API fake sees the
`type: reaction` payload), another company's message is a 404, a channel without reactions or
a message that is not the customer's is a 400 naming the field; deleted and edited messages."""

import pytest
from pytest_httpserver import HTTPServer

from messaging.models import Message, MessageReaction
from messaging.services.inbox import mark_inbound_deleted, record_inbound_edit
from messaging.services.reactions import record_customer_reaction

from .factories import (
    ConversationFactory,
    EmailAccountFactory,
    MessageFactory,
    WhatsAppNumberFactory,
)

pytestmark = pytest.mark.django_db

PHONE_NUMBER_ID = "106540352242922"
TOKEN = "EAAG-token"


@pytest.fixture
def graph(httpserver: HTTPServer, settings):
    settings.WHATSAPP_GRAPH_URL = httpserver.url_for("/v21.0")
    yield httpserver
    httpserver.clear()


@pytest.fixture
def inbound(company):
    number = WhatsAppNumberFactory(
        company=company,
        provider="cloud",
        cloud_phone_number_id=PHONE_NUMBER_ID,
        cloud_access_token=TOKEN,
    )
    conversation = ConversationFactory(
        company=company, source=number, external_thread_id="4915112345678"
    )
    return MessageFactory(conversation=conversation, external_id="wamid.customer.1")


def _url(message) -> str:
    return f"/api/v1/conversations/{message.conversation_id}/messages/{message.pk}/reactions/"


def _ok(wamid="wamid.reaction.1"):
    return {"messaging_product": "whatsapp", "messages": [{"id": wamid}]}


def test_an_agent_reaction_goes_to_the_graph_api_as_a_reaction(
    graph, inbound, api_for, agent_user, eager_celery, django_capture_on_commit_callbacks
):
    graph.expect_request(
        f"/v21.0/{PHONE_NUMBER_ID}/messages",
        method="POST",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ).respond_with_json(_ok())
    api = api_for(agent_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(_url(inbound), {"emoji": "👍"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["reactions"] == [
        {"emoji": "👍", "from_customer": False, "author_id": agent_user.pk, "error": ""}
    ]
    [(request, _)] = graph.log
    assert request.get_json() == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": str(inbound.conversation.client.phone),
        "type": "reaction",
        "reaction": {"message_id": "wamid.customer.1", "emoji": "👍"},
    }
    assert Message.objects.count() == 1, "a reaction is never a message"

    with django_capture_on_commit_callbacks(execute=True):
        removed = api.delete(_url(inbound))
    assert removed.status_code == 200 and removed.json()["reactions"] == []
    assert graph.log[-1][0].get_json()["reaction"] == {
        "message_id": "wamid.customer.1",
        "emoji": "",
    }
    assert not MessageReaction.objects.exists()


def test_a_refused_reaction_says_why_on_the_reaction(
    graph, inbound, api_for, agent_user, eager_celery, django_capture_on_commit_callbacks
):
    graph.expect_request(f"/v21.0/{PHONE_NUMBER_ID}/messages").respond_with_json(
        {"error": {"message": "(#131051) Unsupported", "code": 131051}}, status=400
    )
    with django_capture_on_commit_callbacks(execute=True):
        api_for(agent_user).post(_url(inbound), {"emoji": "❤️"}, format="json")
    reaction = MessageReaction.objects.get()
    assert reaction.emoji == "❤️" and "not supported" in reaction.error


def test_another_companys_message_is_a_404_and_nothing_changes(api_for, agent_user, other_company):
    foreign = MessageFactory(conversation__company=other_company)
    api = api_for(agent_user)
    assert api.post(_url(foreign), {"emoji": "👍"}, format="json").status_code == 404
    assert api.delete(_url(foreign)).status_code == 404
    assert not MessageReaction.objects.exists()


@pytest.mark.parametrize(("emoji", "field"), [("", "emoji"), ("a b", "emoji"), ("x" * 40, "emoji")])
def test_a_bad_emoji_is_a_400_naming_the_field(inbound, api_for, agent_user, emoji, field):
    response = api_for(agent_user).post(_url(inbound), {"emoji": emoji}, format="json")
    assert response.status_code == 400 and field in response.json()
    assert not MessageReaction.objects.exists()


def test_only_a_customers_message_on_a_channel_with_reactions(
    inbound, api_for, agent_user, company
):
    api = api_for(agent_user)
    ours = MessageFactory(conversation=inbound.conversation, direction="out", status="sent")
    response = api.post(_url(ours), {"emoji": "👍"}, format="json")
    assert response.status_code == 400 and "message" in response.json()
    mail = MessageFactory(
        conversation=ConversationFactory(
            company=company, source=EmailAccountFactory(company=company)
        )
    )
    response = api.post(_url(mail), {"emoji": "👍"}, format="json")
    assert response.status_code == 400 and "emoji" in response.json()
    assert not MessageReaction.objects.exists()


def test_customer_reactions_replace_and_remove_and_are_listed(inbound, api_for, agent_user):
    number = inbound.conversation.source
    assert record_customer_reaction(number, "4915112345678", "wamid.customer.1", "😮")
    assert record_customer_reaction(number, "4915112345678", "wamid.customer.1", "😂")
    assert not record_customer_reaction(number, "4915112345678", "wamid.customer.1", "😂")
    assert not record_customer_reaction(number, "another-thread", "wamid.customer.1", "👍")
    [row] = MessageReaction.objects.all()
    assert row.emoji == "😂" and row.from_customer
    listed = api_for(agent_user).get(f"/api/v1/conversations/{inbound.conversation_id}/messages/")
    assert listed.json()["results"][0]["reactions"][0]["emoji"] == "😂"
    assert record_customer_reaction(number, "4915112345678", "wamid.customer.1", "")
    assert not MessageReaction.objects.exists()


def test_edits_keep_the_previous_text_and_deletions_hide_the_text_from_the_api(
    inbound, api_for, agent_user, admin_user, client
):
    number = inbound.conversation.source
    assert record_inbound_edit(number, "4915112345678", "wamid.customer.1", "Second thoughts")
    inbound.refresh_from_db()
    assert inbound.body == "Second thoughts"
    assert inbound.metadata["edits"][0]["body"] == "Hello, is anybody there?"
    api = api_for(agent_user)
    row = api.get(f"/api/v1/conversations/{inbound.conversation_id}/messages/").json()["results"][0]
    assert row["edited_at"] and not row["deleted"]

    conversation = inbound.conversation
    conversation.last_message_preview = "Second thoughts"
    conversation.save()
    assert mark_inbound_deleted(number, ["wamid.customer.1"], "4915112345678") == 1
    conversation.refresh_from_db()
    assert conversation.last_message_preview == "This message was deleted"
    row = api.get(f"/api/v1/conversations/{inbound.conversation_id}/messages/").json()["results"][0]
    assert row["deleted"] and row["body"] == ""
    assert not record_inbound_edit(number, "4915112345678", "wamid.customer.1", "again")

    # The page: everyone sees "deleted"; only admins can unfold the text.
    page = f"/inbox/{inbound.conversation_id}/messages/?id={inbound.pk}"
    client.force_login(agent_user)
    html = client.get(page).content.decode()
    assert "This message was deleted" in html and "Second thoughts" not in html
    client.force_login(admin_user)
    assert "Second thoughts" in client.get(page).content.decode()


def test_the_page_reacts_and_shows_reactions(
    graph, inbound, client, agent_user, eager_celery, django_capture_on_commit_callbacks
):
    graph.expect_request(f"/v21.0/{PHONE_NUMBER_ID}/messages").respond_with_json(_ok())
    client.force_login(agent_user)
    url = f"/inbox/{inbound.conversation_id}/messages/{inbound.pk}/react/"
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"emoji": "🙏"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert 'data-role="our-reaction"' in response.content.decode()
    assert graph.log[0][0].get_json()["reaction"]["emoji"] == "🙏"
    record_customer_reaction(
        inbound.conversation.source, "4915112345678", inbound.external_id, "😮"
    )
    html = client.get(f"/inbox/{inbound.conversation_id}/messages/?id={inbound.pk}").content
    assert "😮" in html.decode() and 'data-role="customer-reaction"' in html.decode()


def test_a_transient_refusal_is_tried_again_then_sent(
    graph, inbound, api_for, agent_user, eager_celery, django_capture_on_commit_callbacks
):
    graph.expect_oneshot_request(f"/v21.0/{PHONE_NUMBER_ID}/messages").respond_with_json(
        {"error": {"message": "rate", "code": 130429}}, status=400
    )
    graph.expect_oneshot_request(f"/v21.0/{PHONE_NUMBER_ID}/messages").respond_with_json(_ok())
    with django_capture_on_commit_callbacks(execute=True):
        api_for(agent_user).post(_url(inbound), {"emoji": "👍"}, format="json")
    assert len(graph.log) == 2
    assert MessageReaction.objects.get().error == ""
