"""The WhatsApp Cloud API channel: sending through the Graph API and receiving its webhooks.

Meta's servers are unreachable here. The far end is a local HTTP server (pytest-httpserver)
that speaks the Graph API's documented request and response format; everything on our side
is real: the API view, send_message, the Celery task (eager), PostgreSQL, Redis.
"""

import hashlib
import hmac
import json

import pytest
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pytest_httpserver import HTTPServer

from messaging.models import Attachment, Conversation, Message
from messaging.tasks import deliver_message

from .factories import ConversationFactory, MessageFactory, WhatsAppNumberFactory
from .inbox import posted_and_drained

pytestmark = pytest.mark.django_db

PHONE_NUMBER_ID = "106540352242922"
TOKEN = "EAAG-secret-access-token"
APP_SECRET = "app-secret-value"


@pytest.fixture
def graph(httpserver: HTTPServer, settings):
    settings.WHATSAPP_GRAPH_URL = httpserver.url_for("/v21.0")
    settings.WHATSAPP_SEND_RATE_PER_MINUTE = 1000
    yield httpserver
    httpserver.clear()


@pytest.fixture
def number(company):
    return WhatsAppNumberFactory(
        company=company,
        provider="cloud",
        cloud_phone_number_id=PHONE_NUMBER_ID,
        cloud_access_token=TOKEN,
        cloud_app_secret=APP_SECRET,
        cloud_verify_token="verify-me",
    )


def _messages_path() -> str:
    return f"/v21.0/{PHONE_NUMBER_ID}/messages"


def _graph_ok(wamid="wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDQjZCMzlEQUE4OTJBMTE4RTUA"):
    return {
        "messaging_product": "whatsapp",
        "contacts": [{"input": "+4915112345678", "wa_id": "4915112345678"}],
        "messages": [{"id": wamid}],
    }


def _graph_error(code, message="(#%s) error", status=400):
    body = {
        "error": {
            "message": message % code if "%s" in message else message,
            "type": "OAuthException",
            "code": code,
            "fbtrace_id": "AbCdEf",
        }
    }
    return json.dumps(body), status


def _client_wrote(number, phone="+4915112345678"):
    """The client wrote within 24 hours: the Cloud API's window for free text is open."""
    from messaging.services import Sender, ingest_inbound

    if number.is_active:
        ingest_inbound(
            number,
            phone.lstrip("+"),
            f"wamid.client.{phone}",
            Sender(address=phone, phone=phone),
            "Hi",
        )


def _send(api, number, **data):
    _client_wrote(number, data.get("phone", "+4915112345678"))
    return api.post(
        f"/api/v1/whatsapp/numbers/{number.pk}/send/",
        {"phone": "+4915112345678", "message": "Your parcel left today.", **data},
        format="json",
    )


# ---------------------------------------------------------------- sending


def test_send_posts_the_documented_request_and_stores_the_wamid(
    graph, number, api_for, agent_user, eager_celery, django_capture_on_commit_callbacks
):
    graph.expect_request(
        _messages_path(), method="POST", headers={"Authorization": f"Bearer {TOKEN}"}
    ).respond_with_json(_graph_ok("wamid.sent.1"))

    with django_capture_on_commit_callbacks(execute=True):
        response = _send(api_for(agent_user), number, quoted="wamid.earlier")

    assert response.status_code == 202, response.content
    message = Message.objects.get(pk=response.json()["message"]["id"])
    assert message.status == "sent" and message.external_id == "wamid.sent.1"
    assert message.conversation.source == number
    assert message.conversation.external_thread_id == "4915112345678"
    assert str(message.conversation.client.phone) == "+4915112345678"
    [(request, _)] = graph.log
    assert request.get_json() == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "+4915112345678",
        "type": "text",
        "text": {"preview_url": False, "body": "Your parcel left today."},
        "context": {"message_id": "wamid.earlier"},
    }


def test_a_second_send_to_the_same_phone_joins_its_conversation(
    graph, number, api_for, agent_user, eager_celery, django_capture_on_commit_callbacks
):
    for wamid in ("wamid.first", "wamid.second"):
        graph.expect_oneshot_request(_messages_path(), method="POST").respond_with_json(
            _graph_ok(wamid)
        )
    api = api_for(agent_user)
    with django_capture_on_commit_callbacks(execute=True):
        assert _send(api, number).status_code == 202
        assert _send(api, number, message="And a second one.").status_code == 202
    assert Conversation.objects.of_source(number).filter().count() == 1
    assert (
        Message.objects.filter(
            conversation__platform="whatsapp", conversation__source_id=number.pk
        ).count()
        == 3  # the client's message (the window is open) and our two
    )


@pytest.mark.parametrize(
    "code,words",
    [
        (131047, "24 hours"),
        (190, "access token is invalid"),
        (131026, "undeliverable"),
        (100, "refused the message (100)"),
    ],
)
def test_graph_errors_become_failed_messages_with_a_reason(
    graph,
    number,
    api_for,
    agent_user,
    eager_celery,
    django_capture_on_commit_callbacks,
    code,
    words,
):
    body, status = _graph_error(code)
    graph.expect_request(_messages_path(), method="POST").respond_with_data(
        body, status=status, content_type="application/json"
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = _send(api_for(agent_user), number)
    message = Message.objects.get(pk=response.json()["message"]["id"])
    assert message.status == "failed"
    assert words in message.error
    assert len(graph.log) == 1  # a permanent refusal is never retried


def test_a_rate_limit_error_is_retried_and_then_sent(
    graph, number, api_for, agent_user, eager_celery, django_capture_on_commit_callbacks
):
    body, status = _graph_error(130429, "(#130429) Rate limit hit")
    graph.expect_oneshot_request(_messages_path(), method="POST").respond_with_data(
        body, status=status, content_type="application/json"
    )
    graph.expect_request(_messages_path(), method="POST").respond_with_json(
        _graph_ok("wamid.after.retry")
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = _send(api_for(agent_user), number)
    message = Message.objects.get(pk=response.json()["message"]["id"])
    assert message.status == "queued" and "rate limit (130429)" in message.error
    Message.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())  # time passed
    deliver_message(message.pk)
    message.refresh_from_db()
    assert message.status == "sent" and message.external_id == "wamid.after.retry"
    assert len(graph.log) == 2


def test_an_unreachable_graph_api_fails_the_message_after_retries(
    number, api_for, agent_user, eager_celery, django_capture_on_commit_callbacks, settings
):
    settings.WHATSAPP_GRAPH_URL = "http://127.0.0.1:9/v21.0"  # discard port: refused
    settings.SEND_MAX_ATTEMPTS = 3
    with django_capture_on_commit_callbacks(execute=True):
        response = _send(api_for(agent_user), number)
    message = Message.objects.get(pk=response.json()["message"]["id"])
    for _ in range(2):
        assert message.status == "queued" and "could not be reached" in message.error
        Message.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())
        deliver_message(message.pk)
        message.refresh_from_db()
    assert message.status == "failed"
    assert (
        message.error.startswith("Gave up after 3 attempts")
        and "could not be reached" in message.error
    )


def test_a_number_without_cloud_credentials_fails_in_words(
    graph, company, api_for, agent_user, eager_celery, django_capture_on_commit_callbacks
):
    bare = WhatsAppNumberFactory(company=company, provider="cloud", cloud_access_token="")
    with django_capture_on_commit_callbacks(execute=True):
        response = _send(api_for(agent_user), bare)
    message = Message.objects.get(pk=response.json()["message"]["id"])
    assert message.status == "failed" and "access token" in message.error
    assert graph.log == []


# ---------------------------------------------------------------- webhooks


def _webhook_url(number) -> str:
    return reverse("whatsapp-webhook", args=[number.uuid])


def _signed_post(client, number, payload, secret=APP_SECRET, signature=None):
    raw = json.dumps(payload).encode()
    if signature is None:
        signature = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    headers = {"HTTP_X_HUB_SIGNATURE_256": signature} if signature else {}
    return posted_and_drained(
        client.post(_webhook_url(number), raw, content_type="application/json", **headers)
    )


def _inbound_payload(*messages, statuses=()):
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550783881",
                                "phone_number_id": PHONE_NUMBER_ID,
                            },
                            "contacts": [
                                {"profile": {"name": "Kerry Fisher"}, "wa_id": "4915112345678"}
                            ],
                            "messages": list(messages),
                            "statuses": list(statuses),
                        },
                    }
                ],
            }
        ],
    }


def _text(wamid="wamid.in.1", body="Is my parcel on its way?"):
    return {
        "from": "4915112345678",
        "id": wamid,
        "timestamp": "1763900000",
        "type": "text",
        "text": {"body": body},
    }


def test_verification_answers_the_challenge_only_with_the_right_token(client, number):
    url = _webhook_url(number)
    good = client.get(
        url,
        {"hub.mode": "subscribe", "hub.verify_token": "verify-me", "hub.challenge": "1158201444"},
    )
    assert good.status_code == 200 and good.content == b"1158201444"
    bad = client.get(
        url, {"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1158201444"}
    )
    assert bad.status_code == 403 and b"1158201444" not in bad.content
    assert client.get(url).status_code == 403
    # A token or signature that is not ASCII is a refusal too, never a 500.
    odd = client.get(url, {"hub.mode": "subscribe", "hub.verify_token": "ü", "hub.challenge": "1"})
    assert odd.status_code == 403
    assert _signed_post(client, number, _inbound_payload(), signature="sha256=ü").status_code == 403


def test_a_signed_delivery_lands_in_the_inbox(client, number):
    response = _signed_post(client, number, _inbound_payload(_text()))
    assert response.status_code == 200
    assert response.ingested["stored"] == 1
    message = Message.objects.get(external_id="wamid.in.1")
    assert message.body == "Is my parcel on its way?"
    assert message.sender_name == "Kerry Fisher"
    conversation = message.conversation
    assert conversation.source == number and conversation.unread_count == 1
    assert str(conversation.client.phone) == "+4915112345678"
    assert message.created_at.year >= 2025


@pytest.mark.parametrize(
    "signature",
    ["", "sha256=" + "0" * 64, "sha1=abc", None],
    ids=["missing", "wrong", "other-scheme", "other-secret"],
)
def test_an_unsigned_or_badly_signed_delivery_is_403_and_stores_nothing(client, number, signature):
    payload = _inbound_payload(_text())
    if signature is None:
        response = _signed_post(client, number, payload, secret="not-the-app-secret")
    else:
        response = _signed_post(client, number, payload, signature=signature)
    assert response.status_code == 403
    assert not Message.objects.exists()


def test_the_same_delivery_twice_stores_one_message(client, number):
    payload = _inbound_payload(_text())
    assert _signed_post(client, number, payload).ingested["stored"] == 1
    again = _signed_post(client, number, payload)
    assert again.status_code == 200
    assert {key: again.ingested[key] for key in ("stored", "duplicates", "statuses")} == {
        "stored": 0,
        "duplicates": 1,
        "statuses": 0,
    }
    assert Message.objects.filter(external_id="wamid.in.1").count() == 1
    assert Conversation.objects.get().unread_count == 1


def test_status_updates_move_our_message_forward_and_failures_say_why(client, number):
    conversation = ConversationFactory(
        company=number.company, source=number, external_thread_id="4915112345678"
    )
    sent = MessageFactory(
        conversation=conversation, direction="out", status="sent", external_id="wamid.out.1"
    )
    other = MessageFactory(
        conversation=conversation, direction="out", status="sent", external_id="wamid.out.2"
    )

    def status(wamid, name, **extra):
        return {"id": wamid, "status": name, "timestamp": "1763900100", **extra}

    _signed_post(client, number, _inbound_payload(statuses=[status("wamid.out.1", "delivered")]))
    sent.refresh_from_db()
    assert sent.status == "delivered" and sent.delivered_at is not None
    _signed_post(client, number, _inbound_payload(statuses=[status("wamid.out.1", "read")]))
    # A late "delivered" never moves "read" back.
    _signed_post(client, number, _inbound_payload(statuses=[status("wamid.out.1", "delivered")]))
    sent.refresh_from_db()
    assert sent.status == "read"

    failure = status(
        "wamid.out.2", "failed", errors=[{"code": 131047, "title": "Re-engagement message"}]
    )
    _signed_post(client, number, _inbound_payload(statuses=[failure]))
    other.refresh_from_db()
    assert other.status == "failed" and "24 hours" in other.error


def test_status_webhooks_move_a_broadcasts_recipients_forward(
    client, number, other_company, admin_user
):
    from channels_integrations.models import Broadcast, BroadcastRecipient
    from channels_integrations.whatsapp import broadcasts

    broadcast = Broadcast.objects.create(
        company=number.company, number=number, text="Sale", status="completed"
    )
    read, failed, untouched = (
        BroadcastRecipient.objects.create(
            broadcast=broadcast,
            phone=f"+4915112345{i:03d}",
            status="sent",
            provider_message_id=f"wamid.bc.{i}",
        )
        for i in range(3)
    )
    # The same wamid on another company's number is never touched.
    stranger = WhatsAppNumberFactory(company=other_company, provider="cloud")
    theirs = BroadcastRecipient.objects.create(
        broadcast=Broadcast.objects.create(
            company=other_company, number=stranger, text="x", status="completed"
        ),
        phone="+4915112345000",
        status="sent",
        provider_message_id="wamid.bc.0",
    )

    def status(wamid, name, **extra):
        return {"id": wamid, "status": name, "timestamp": "1763900100", **extra}

    failure = status("wamid.bc.1", "failed", errors=[{"code": 131026, "title": "Undeliverable"}])
    response = _signed_post(
        client,
        number,
        _inbound_payload(
            statuses=[
                status("wamid.bc.0", "delivered"),
                status("wamid.bc.0", "read"),
                failure,
                status("wamid.bc.unknown", "read"),
            ]
        ),
    )
    assert response.status_code == 200 and response.ingested["statuses"] == 2
    # A late "delivered" never moves "read" back; a failure never overwrites "read".
    _signed_post(
        client,
        number,
        _inbound_payload(
            statuses=[status("wamid.bc.0", "delivered"), status("wamid.bc.0", "failed")]
        ),
    )
    for recipient in (read, failed, untouched, theirs):
        recipient.refresh_from_db()
    assert read.status == "read"
    assert failed.status == "failed" and failed.error
    assert untouched.status == "sent" and theirs.status == "sent"
    progress = broadcasts.progress(broadcast.pk)
    assert (progress["sent"], progress["delivered"], progress["read"]) == (2, 1, 1)
    assert progress["failed"] == 1
    client.force_login(admin_user)
    page = client.get(reverse("broadcast_detail", args=[broadcast.pk])).content.decode()
    assert 'data-count="read">1<' in page and 'data-count="delivered">1<' in page


def test_a_media_message_records_its_attachment(client, number):
    image = {
        "from": "4915112345678",
        "id": "wamid.img.1",
        "timestamp": "1763900000",
        "type": "image",
        "image": {"caption": "The broken lid", "mime_type": "image/jpeg", "id": "1479537139650973"},
    }
    assert _signed_post(client, number, _inbound_payload(image)).status_code == 200
    message = Message.objects.get(external_id="wamid.img.1")
    assert message.body == "The broken lid"
    attachment = Attachment.objects.get(message=message)
    assert attachment.kind == "image" and attachment.content_type == "image/jpeg"
    assert attachment.external_id == "1479537139650973" and not attachment.stored


def test_a_deactivated_number_acknowledges_and_stores_nothing(client, number):
    number.is_active = False
    number.save()
    response = _signed_post(client, number, _inbound_payload(_text()))
    assert response.status_code == 200 and response.json()["ignored"] is True
    assert not Message.objects.exists()


def test_unknown_number_and_malformed_body(client, number):
    from uuid import uuid4

    assert (
        client.post(f"/webhooks/whatsapp/{uuid4()}/", b"{}", "application/json").status_code == 404
    )
    raw = b"not json"
    signature = "sha256=" + hmac.new(APP_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    response = client.post(
        _webhook_url(number),
        raw,
        content_type="application/json",
        HTTP_X_HUB_SIGNATURE_256=signature,
    )
    assert response.status_code == 400 and "JSON" in response.json()["detail"]


def test_a_cloud_number_has_no_qr_session(admin_api, number):
    response = admin_api.post(f"/api/v1/whatsapp/numbers/{number.pk}/session/initialize/")
    assert response.status_code == 400
    assert "provider" in response.json()


# ---------------------------------------------------------------- deliveries of any shape

_LEAF = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.sampled_from(["4915112345678", "text", "image", "audio", "messages", "x" * 300, "a\x00b"])
)
_ANY = st.recursive(
    _LEAF,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=12,
)
_MESSAGE = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.just("wamid.any"), _LEAF),
        "from": st.one_of(st.just("4915112345678"), _LEAF),
        "type": st.one_of(
            st.sampled_from(["text", "image", "audio", "location", "reaction"]), _LEAF
        ),
        "text": st.one_of(st.fixed_dictionaries({"body": _LEAF}), _ANY),
        "image": _ANY,
        "audio": st.one_of(st.fixed_dictionaries({"voice": _LEAF, "id": _LEAF}), _ANY),
        "location": _ANY,
        "timestamp": _LEAF,
        "context": _ANY,
    },
)
_VALUE = st.fixed_dictionaries(
    {},
    optional={
        "contacts": st.one_of(
            st.lists(st.fixed_dictionaries({"wa_id": _LEAF, "profile": _ANY})), _ANY
        ),
        "messages": st.one_of(st.lists(_MESSAGE, max_size=3), _ANY),
        "statuses": st.one_of(
            st.lists(st.fixed_dictionaries({"id": _LEAF, "status": _LEAF, "errors": _ANY})), _ANY
        ),
    },
)
_DELIVERY = st.one_of(
    st.fixed_dictionaries(
        {
            "entry": st.one_of(
                st.lists(
                    st.fixed_dictionaries(
                        {
                            "changes": st.one_of(
                                st.lists(
                                    st.fixed_dictionaries(
                                        {
                                            "field": st.sampled_from(["messages", "x"]),
                                            "value": _VALUE,
                                        }
                                    ),
                                    max_size=2,
                                ),
                                _ANY,
                            )
                        }
                    ),
                    max_size=2,
                ),
                _ANY,
            )
        }
    ),
    _ANY,
)


@hypothesis_settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(payload=_DELIVERY)
def test_a_signed_delivery_of_any_shape_is_acknowledged_never_a_500(client, number, payload):
    """Meta re-delivers anything that did not get a 2xx: whatever a signed delivery holds, it is
    answered 200 and what could be read is stored; a body with no `entry` list holds nothing
    to read: 400 naming the field."""
    response = _signed_post(client, number, payload)
    delivery = isinstance(payload, dict) and isinstance(payload.get("entry"), list)
    assert response.status_code == (200 if delivery else 400), (payload, response.content[:300])
