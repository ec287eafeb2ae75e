"""Real sample deliveries of the Cloud API webhook (tests/data/whatsapp_webhooks: pywa's
public samples, which follow Meta's documented examples) and hypothesis mutations of them,
posted signed through the real webhook endpoint: every kind lands as what it is (a reaction
on its message, an edit on its message, a location as a map link, ...), nothing another number
was sent is stored here, and no signed body makes a 5xx."""

import copy
import hashlib
import hmac
import json
from pathlib import Path

import pytest
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from messaging.models import Conversation, Message, MessageReaction

from .factories import ConversationFactory, MessageFactory, WhatsAppNumberFactory
from .inbox import posted_and_drained

pytestmark = pytest.mark.django_db

DATA = Path(__file__).parent / "data" / "whatsapp_webhooks"
PHONE_NUMBER_ID = "1122334455667"  # the samples' number
APP_SECRET = "app-secret-value"
CUSTOMER = "972987654321"


def _samples() -> dict[str, dict]:
    found = {}
    for path in sorted(DATA.glob("*.json")):
        for name, body in json.loads(path.read_text()).items():
            found[f"{path.stem}.{name}"] = body
    return found


SAMPLES = _samples()


def _ours(body: dict, phone_number_id: str = PHONE_NUMBER_ID) -> dict:
    """The sample, addressed to `phone_number_id`, sent by our customer."""
    body = copy.deepcopy(body)
    for entry in body.get("entry", []):
        for change in entry.get("changes", []):
            value = change.get("value", {})
            value.setdefault("metadata", {})["phone_number_id"] = phone_number_id
            for message in value.get("messages", []):
                if not str(message.get("from", "")).isdigit():
                    message["from"] = CUSTOMER
    return body


@pytest.fixture
def number(company):
    return WhatsAppNumberFactory(
        company=company,
        provider="cloud",
        cloud_phone_number_id=PHONE_NUMBER_ID,
        cloud_access_token="token",
        cloud_app_secret=APP_SECRET,
    )


def _post(client, number, payload, raw: bytes | None = None):
    raw = raw if raw is not None else json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(APP_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    return posted_and_drained(
        client.post(
            reverse("whatsapp-webhook", args=[number.uuid]),
            raw,
            content_type="application/json",
            HTTP_X_HUB_SIGNATURE_256=signature,
        )
    )


def _message(name: str) -> dict:
    return SAMPLES[name]["entry"][0]["changes"][0]["value"]["messages"][0]


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_sample_is_acknowledged_and_nothing_is_a_placeholder(client, number, name):
    response = _post(client, number, _ours(SAMPLES[name]))
    assert response.status_code == 200, response.content
    for message in Message.objects.all():
        assert "[" not in message.body or "message]" not in message.body, message.body
        assert message.metadata.get("raw"), "the raw payload is kept"


def test_a_delivery_for_another_phone_number_id_is_ignored(client, number):
    response = _post(client, number, _ours(SAMPLES["message.text"], "999000999000"))
    assert response.status_code == 200 and response.ingested["ignored"] == 1
    assert not Message.objects.exists() and not Conversation.objects.exists()


def test_text_is_stored_with_its_raw_payload(client, number):
    _post(client, number, _ours(SAMPLES["message.text"]))
    message = Message.objects.get()
    assert message.body == "Body Text"
    assert message.metadata["raw"]["id"] == "wamid.xyzxyz"
    assert message.conversation.unread_count == 1


def _thread_message(number, direction="out", external_id="wamid.yzxyzx="):
    conversation = Conversation.objects.filter(external_thread_id=CUSTOMER).first()
    if conversation is None:
        conversation = ConversationFactory(
            company=number.company, source=number, external_thread_id=CUSTOMER
        )
    return MessageFactory(
        conversation=conversation,
        direction=direction,
        external_id=external_id,
        body="Your order is ready.",
        status="sent" if direction == "out" else "received",
    )


def test_a_reaction_is_a_reaction_on_its_message_and_removing_it_removes_it(client, number):
    target = _thread_message(number)
    conversation = target.conversation
    response = _post(client, number, _ours(SAMPLES["message.reaction"]))
    assert response.status_code == 200 and response.ingested["reactions"] == 1
    assert Message.objects.count() == 1, "never a new message"
    [reaction] = MessageReaction.objects.all()
    assert (reaction.message, reaction.emoji, reaction.from_customer) == (target, "😮", True)
    conversation.refresh_from_db()
    assert conversation.unread_count == 0
    # The same again changes nothing; a removal (empty emoji or none) removes it.
    assert _post(client, number, _ours(SAMPLES["message.reaction"])).ingested["reactions"] == 0
    assert _post(client, number, _ours(SAMPLES["message.unreaction_empty"])).ingested["reactions"]
    assert not MessageReaction.objects.exists()
    _post(client, number, _ours(SAMPLES["message.reaction"]))
    _post(client, number, _ours(SAMPLES["message.unreaction_no_emoji"]))
    assert not MessageReaction.objects.exists() and Message.objects.count() == 1


def test_a_reaction_to_a_message_we_do_not_have_stores_nothing(client, number):
    response = _post(client, number, _ours(SAMPLES["message.reaction"]))
    assert response.status_code == 200 and response.ingested["reactions"] == 0
    assert not Message.objects.exists() and not Conversation.objects.exists()


def test_an_edit_changes_the_original_and_keeps_the_previous_text(client, number):
    sample = _ours(SAMPLES["edited_message.image"])
    edit = sample["entry"][0]["changes"][0]["value"]["messages"][0]
    original = _thread_message(number, "in", edit["edit"]["original_message_id"])
    edit["from"] = CUSTOMER
    response = _post(client, number, sample)
    assert response.status_code == 200 and response.ingested["edits"] == 1
    original.refresh_from_db()
    assert original.body == "Updated image caption"
    assert original.metadata["edits"][0]["body"] == "Your order is ready."
    assert original.metadata["edited_at"]
    assert Message.objects.count() == 1 and Conversation.objects.count() == 1


def test_an_edit_of_an_unknown_message_makes_no_message_and_no_conversation(client, number):
    response = _post(client, number, _ours(SAMPLES["edited_message.image"]))
    assert response.status_code == 200 and response.ingested["edits"] == 0
    assert not Message.objects.exists() and not Conversation.objects.exists()


def test_a_revoke_marks_the_original_deleted(client, number):
    sample = _ours(SAMPLES["deleted_message.revoke"])
    revoke = sample["entry"][0]["changes"][0]["value"]["messages"][0]
    original = _thread_message(number, "in", revoke["revoke"]["original_message_id"])
    response = _post(client, number, sample)
    assert response.status_code == 200 and response.ingested["deletions"] == 1
    original.refresh_from_db()
    assert original.metadata["deleted"] is True
    assert Message.objects.count() == 1


@pytest.mark.parametrize(
    ("name", "kind", "words"),
    [
        ("message.chosen_location", "location", ["Facebook HQ", "1 Hacker Way", "openstreetmap"]),
        ("message.current_location", "location", ["mlat=12.250890"]),
        ("message.contacts", "contacts", ["Chandler Bing", "+1 555-555-5555", "Rachel Green"]),
        ("message.order", "order", ["3 × HAMBURGER", "Total: 180 ILS"]),
        ("callback_button.button", "choice", ["title"]),
        ("callback_button.quick_reply", "choice", ["title"]),
        ("callback_selection.description", "choice", ["title"]),
        ("flow_completion.completion", "form", ["comment_text: Comment Text", "Sent"]),
        ("message.unsupported_with_type", "unsupported", ["pool"]),
        ("message.interactive_message_with_err", "unsupported", ["interactive"]),
    ],
)
def test_typed_content_is_stored_as_what_it_is(client, number, name, kind, words):
    assert _post(client, number, _ours(SAMPLES[name])).status_code == 200
    message = Message.objects.get()
    assert message.metadata["content"]["kind"] == kind
    for word in words:
        assert word in message.body, message.body
    assert "flow_token" not in message.body


def test_a_system_notice_is_shown_but_not_unread(client, number):
    _post(client, number, _ours(SAMPLES["system.phone_number_change"]))
    message = Message.objects.get()
    assert message.metadata["content"]["kind"] == "notice"
    assert "changed from 972987654321" in message.body
    assert message.conversation.unread_count == 0


# ---------------------------------------------------------------- mutations

_ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.just("a\x00b"),
    st.just("x" * 100_000),
    st.just([]),
    st.just({}),
    st.just([{"id": None}]),
)


def _paths(value, prefix=()):
    """Every (path) to a value inside a JSON document."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


@st.composite
def _mutated(draw):
    body = _ours(SAMPLES[draw(st.sampled_from(sorted(SAMPLES)))])
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        paths = [path for path in _paths(body) if path]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = body
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = copy.deepcopy(draw(_ODD))
    return body


@hypothesis_settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(payload=_mutated())
def test_mutated_samples_never_make_a_5xx(client, number, payload):
    response = _post(client, number, payload)
    assert response.status_code in (200, 400), (payload, response.content[:300])


def test_a_notice_wakes_no_bot_but_a_message_does(
    client, number, django_capture_on_commit_callbacks
):
    from messaging.signals import inbound_message_stored

    heard = []

    def receiver(sender, message_id, **kwargs):
        heard.append(message_id)

    inbound_message_stored.connect(receiver, dispatch_uid="corpus-test")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            _post(client, number, _ours(SAMPLES["system.identity_change"]))
        assert heard == []
        text = _ours(SAMPLES["message.text"])
        text["entry"][0]["changes"][0]["value"]["messages"][0]["id"] = "wamid.text.after"
        with django_capture_on_commit_callbacks(execute=True):
            _post(client, number, text)
        assert heard == [Message.objects.get(external_id="wamid.text.after").pk]
    finally:
        inbound_message_stored.disconnect(dispatch_uid="corpus-test")
