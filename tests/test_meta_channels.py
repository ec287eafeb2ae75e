"""Instagram Direct and Facebook Messenger (channels_integrations/meta): the webhook (challenge,
signature, every documented event kind from tests/data/meta_webhooks, odd and mutated bodies),
replies through the outbox to the Graph fake at the wire with Meta's messaging window, test
connection, the API's write-only secrets, roles, deletion preview and cascade."""

import copy
import hashlib
import hmac
import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from channels_integrations.meta.models import InstagramAccount, MessengerPage
from messaging.models import Conversation, Message

from .factories import InstagramAccountFactory, MessengerPageFactory
from .inbox import posted_and_drained

pytestmark = pytest.mark.django_db

SAMPLES = Path(__file__).parent / "data" / "meta_webhooks"
SECRET = "meta-app-secret"


def sample(name: str, account) -> dict:
    own = account.ig_user_id if isinstance(account, InstagramAccount) else account.page_id
    return json.loads((SAMPLES / name).read_text().replace("OWN_ID", own))


def signed_post(client, account, payload, secret=SECRET, signature=None):
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    if signature is None:
        signature = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return posted_and_drained(
        client.post(
            f"/webhooks/meta/{account.uuid}/",
            raw,
            content_type="application/json",
            headers={"X-Hub-Signature-256": signature},
        )
    )


@pytest.fixture
def page(company):
    return MessengerPageFactory(company=company, page_id="1000001", app_secret=SECRET)


@pytest.fixture
def instagram(company):
    return InstagramAccountFactory(
        company=company, page_id="1000002", ig_user_id="17841400000001", app_secret=SECRET
    )


def _inbound(account):
    return Message.objects.filter(
        conversation__in=Conversation.objects.of_source(account), direction="in"
    )


# ---------------------------------------------------------------- webhook


def test_verification_answers_the_challenge_only_with_the_right_token(client, page):
    url = f"/webhooks/meta/{page.uuid}/"
    ok = {"hub.mode": "subscribe", "hub.verify_token": "meta-verify-token", "hub.challenge": "42"}
    response = client.get(url, ok)
    assert response.status_code == 200 and response.content == b"42"
    assert client.get(url, {**ok, "hub.verify_token": "wrong"}).status_code == 403
    assert client.get(url, {**ok, "hub.verify_token": "wrong ü"}).status_code == 403
    assert client.get(url, {**ok, "hub.mode": "unsubscribe"}).status_code == 403
    assert client.get("/webhooks/meta/00000000-0000-0000-0000-000000000000/", ok).status_code == 404


@pytest.mark.parametrize(
    "signature", ["", "sha256=", "sha256=deadbeef", "sha1=abc", "sha256=ü", "wrong-secret"]
)
def test_an_unsigned_or_badly_signed_delivery_is_403_and_stores_nothing(client, page, signature):
    payload = sample("messenger_text.json", page)
    if signature == "wrong-secret":
        response = signed_post(client, page, payload, secret="another-secret")
    else:
        response = signed_post(client, page, payload, signature=signature)
    assert response.status_code == 403
    assert not _inbound(page).exists()


def test_a_messenger_text_lands_in_the_inbox_once(client, page):
    payload = sample("messenger_text.json", page)
    assert signed_post(client, page, payload).ingested["stored"] == 1
    again = signed_post(client, page, payload).ingested
    assert again["stored"] == 0 and again["duplicates"] == 1
    [message] = _inbound(page)
    assert message.body == "Hello, is the shop open on Sunday?"
    assert message.external_id == "m_text_1"
    conversation = message.conversation
    assert conversation.platform == "facebook" and conversation.external_thread_id == "PSID_1"
    assert conversation.source == page and conversation.unread_count == 1
    page.refresh_from_db()
    assert page.last_event_at is not None


def test_attachments_are_recorded_with_their_urls(client, page):
    assert signed_post(client, page, sample("messenger_attachments.json", page)).status_code == 200
    [message] = _inbound(page)
    assert message.body == "[audio, file, image, video]"
    kinds = sorted(message.attachments.values_list("kind", flat=True))
    assert kinds == ["audio", "document", "image", "video"]
    urls = [item["url"] for item in message.metadata["attachments"]]
    assert urls[0].startswith("https://scontent.xx.fbcdn.net/") and len(urls) == 4
    assert message.attachments.get(kind="document").filename == "invoice.pdf"


def test_quick_replies_postbacks_and_quotes_are_shown_as_what_they_are(client, page):
    for name in (
        "messenger_quick_reply.json",
        "messenger_postback.json",
        "messenger_reply_to.json",
    ):
        assert signed_post(client, page, sample(name, page)).ingested["stored"] == 1
    by_id = {message.external_id: message for message in _inbound(page)}
    assert by_id["m_qr_1"].body == "Red"
    assert by_id["m_qr_1"].metadata["quick_reply"] == {"payload": "COLOR_RED"}
    assert by_id["m_pb_1"].body == "Get Started"
    assert by_id["m_pb_1"].metadata == {"type": "postback", "postback": {"payload": "GET_STARTED"}}
    assert by_id["m_reply_1"].metadata["quoted"] == "m_text_1"


def test_echoes_of_our_own_messages_are_ignored(client, page, instagram):
    assert signed_post(client, page, sample("messenger_echo.json", page)).ingested["stored"] == 0
    answer = signed_post(client, instagram, sample("instagram_echo.json", instagram)).ingested
    assert answer["stored"] == 0 and answer["skipped"] == 1
    assert not Message.objects.exists()


def test_instagram_story_mentions_and_replies(client, instagram):
    for name in (
        "instagram_text.json",
        "instagram_story_mention.json",
        "instagram_story_reply.json",
    ):
        assert signed_post(client, instagram, sample(name, instagram)).ingested["stored"] == 1
    messages = list(_inbound(instagram).order_by("id"))
    assert [m.metadata["type"] for m in messages] == ["text", "story_mention", "story_reply"]
    assert messages[1].body == "[story mention]"
    assert messages[1].metadata["attachments"][0]["url"].startswith("https://lookaside.fbsbx.com/")
    assert messages[2].body == "Love this look!"
    assert messages[2].metadata["story"]["id"] == "17891234567890123"
    assert messages[0].conversation.platform == "instagram"


def test_a_reaction_is_recorded_on_its_message_and_removed(client, page):
    signed_post(client, page, sample("messenger_text.json", page))
    answer = signed_post(client, page, sample("messenger_reaction.json", page)).ingested
    assert answer["reactions"] == 1 and answer["stored"] == 0
    [message] = _inbound(page)
    [reaction] = message.reactions.all()
    assert (reaction.emoji, reaction.from_customer) == ("\u2764", True)
    signed_post(client, page, sample("messenger_unreaction.json", page))
    assert not message.reactions.exists()
    assert _inbound(page).count() == 1  # never a new message


def _outbound(account, thread, external_id="m_OUTBOUND", sent_ago=timedelta(minutes=1)):
    from .factories import ConversationFactory, MessageFactory

    conversation = Conversation.objects.filter(
        platform=account.__class__ is InstagramAccount and "instagram" or "facebook",
        source_id=account.pk,
        external_thread_id=thread,
    ).first() or ConversationFactory(
        company=account.company, source=account, external_thread_id=thread
    )
    return MessageFactory(
        conversation=conversation,
        direction="out",
        status="sent",
        external_id=external_id,
        sent_at=timezone.now() - sent_ago,
    )


def test_delivery_and_read_receipts_move_our_messages_forward(client, page, instagram):
    sent = _outbound(page, "PSID_1")
    assert (
        signed_post(client, page, sample("messenger_delivery.json", page)).ingested["statuses"] == 1
    )
    sent.refresh_from_db()
    assert sent.status == "delivered"
    read = sample("messenger_read.json", page)  # by watermark: all we sent until then
    read["entry"][0]["messaging"][0]["read"]["watermark"] = int(timezone.now().timestamp() * 1000)
    signed_post(client, page, read)
    sent.refresh_from_db()
    assert sent.status == "read"
    signed_post(client, page, sample("messenger_delivery.json", page))  # late: never back
    sent.refresh_from_db()
    assert sent.status == "read"

    ig_sent = _outbound(instagram, "IGSID_1")
    signed_post(client, instagram, sample("instagram_read.json", instagram))  # by mid
    ig_sent.refresh_from_db()
    assert ig_sent.status == "read"


def test_a_deactivated_account_acknowledges_and_stores_nothing(client, page):
    MessengerPage.objects.filter(pk=page.pk).update(is_active=False)
    response = signed_post(client, page, sample("messenger_text.json", page))
    assert response.status_code == 200 and response.json()["ignored"] is True
    assert not Message.objects.exists()


def test_an_entry_for_another_page_is_not_stored_here(client, page):
    payload = sample("messenger_text.json", page)
    payload["entry"][0]["id"] = "999999"
    assert signed_post(client, page, payload).ingested["stored"] == 0
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    "raw",
    [
        b"[]",
        b"null",
        b"{}",
        b'{"entry": 5}',
        b'{"entry": [{"messaging": [null, 1, "x"]}]}',
        b'{"entry": [{"messaging": [{"sender": {"id": "1"}, "message": {"mid": "a\\u0000b"}}]}]}',
        b'{"entry": [{"messaging": [{"sender": {"id": "1"}, "message": {"mid": "x", "text": 5}}]}]}',
        b'{"entry": [{"messaging": [{"sender": {"id": "1"}, "read": {"watermark": 1e400}}]}]}',
        b'{"entry": [{"messaging": [{"sender": {"id": "1"}, "delivery": {"mids": "m"}}]}]}',
        b'{"entry": [{"messaging": [{"sender": {"id": "1"}, "message": {"mid": "m", "text": "\\u0000ok"}}]}]}',
    ],
)
def test_odd_signed_bodies_are_acknowledged(client, page, raw):
    assert signed_post(client, page, raw).status_code == 200


def test_a_body_that_is_not_json_is_400(client, page):
    assert signed_post(client, page, b"\xff\xfe not json").status_code == 400


_LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
)
_ANY = st.recursive(
    _LEAF,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=10,
)
SAMPLE_NAMES = sorted(path.name for path in SAMPLES.glob("*.json"))


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


def _mutate(payload, path, replacement, delete):
    if not path:
        return replacement
    mutated = copy.deepcopy(payload)
    parent = mutated
    for key in path[:-1]:
        parent = parent[key]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = replacement
    return mutated


@hypothesis_settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_mutated_real_samples_are_never_a_5xx(client, page, instagram, data):
    """Each documented sample with one part replaced by arbitrary JSON, or removed: answered
    2xx (what could be read stored), never a 5xx that Meta would re-deliver."""
    name = data.draw(st.sampled_from(SAMPLE_NAMES))
    account = instagram if name.startswith("instagram") else page
    payload = sample(name, account)
    path = data.draw(st.sampled_from(list(_paths(payload))))
    mutated = _mutate(
        payload, path, data.draw(_ANY), delete=bool(path) and data.draw(st.booleans())
    )
    response = signed_post(client, account, mutated)
    assert response.status_code == 200, (name, mutated, response.content[:300])


# ---------------------------------------------------------------- replies


def _write_in(client, account, name, ago=timedelta(0)):
    signed_post(client, account, sample(name, account))
    message = _inbound(account).latest("id")
    Message.objects.filter(pk=message.pk).update(created_at=timezone.now() - ago)
    return message.conversation


def _reply(api, conversation, body="We are open 10-16."):
    return api.post(
        f"/api/v1/conversations/{conversation.pk}/messages/", {"body": body}, format="json"
    )


@pytest.fixture
def graph_page(far_end, page):
    far_end.meta_pages[page.page_access_token] = (page.page_id, "Acme Shop")
    far_end.meta_app_secrets[page.page_access_token] = SECRET
    return far_end


def test_a_reply_inside_24_hours_goes_out_as_a_response(
    client, page, graph_page, admin_api, eager_celery, django_capture_on_commit_callbacks
):
    conversation = _write_in(client, page, "messenger_text.json", ago=timedelta(hours=23))
    with django_capture_on_commit_callbacks(execute=True):
        response = _reply(admin_api, conversation)
    assert response.status_code == 201, response.content
    [sent] = graph_page.meta_sent
    assert (sent.page_id, sent.recipient_id, sent.body) == (
        "1000001",
        "PSID_1",
        "We are open 10-16.",
    )
    assert (sent.messaging_type, sent.tag) == ("RESPONSE", "")
    message = Message.objects.get(pk=response.json()["id"])
    assert message.status == "sent" and message.external_id.startswith("m_fake")


def test_after_24_hours_a_reply_is_refused_unless_the_human_agent_tag_is_on(
    client, page, graph_page, admin_api, eager_celery, django_capture_on_commit_callbacks
):
    conversation = _write_in(client, page, "messenger_text.json", ago=timedelta(hours=30))
    response = _reply(admin_api, conversation)
    assert response.status_code == 400
    assert "24 hours" in response.json()["body"][0]
    assert not Message.objects.filter(direction="out").exists()  # nothing queued

    MessengerPage.objects.filter(pk=page.pk).update(human_agent_tag=True)
    with django_capture_on_commit_callbacks(execute=True):
        assert _reply(admin_api, conversation).status_code == 201
    [sent] = graph_page.meta_sent
    assert (sent.messaging_type, sent.tag) == ("MESSAGE_TAG", "HUMAN_AGENT")

    Message.objects.filter(direction="in").update(created_at=timezone.now() - timedelta(days=8))
    response = _reply(admin_api, conversation)
    assert response.status_code == 400 and "7 days" in response.json()["body"][0]


def test_instagram_replies_go_through_the_page_and_are_at_most_1000_characters(
    client, instagram, far_end, admin_api, eager_celery, django_capture_on_commit_callbacks
):
    far_end.meta_pages[instagram.page_access_token] = (instagram.page_id, "Acme IG Page")
    conversation = _write_in(client, instagram, "instagram_text.json")
    response = _reply(admin_api, conversation, body="x" * 1001)
    assert response.status_code == 400 and "1000" in response.json()["body"][0]
    with django_capture_on_commit_callbacks(execute=True):
        assert _reply(admin_api, conversation, body="y" * 1000).status_code == 201
    [sent] = far_end.meta_sent
    assert (sent.page_id, sent.recipient_id) == ("1000002", "IGSID_1")


def test_a_refused_token_fails_the_message_in_words(
    client, page, far_end, admin_api, eager_celery, django_capture_on_commit_callbacks
):
    conversation = _write_in(client, page, "messenger_text.json")  # the fake knows no token
    with django_capture_on_commit_callbacks(execute=True):
        response = _reply(admin_api, conversation)
    message = Message.objects.get(pk=response.json()["id"])
    assert message.status == "failed" and "access token" in message.error


# ---------------------------------------------------------------- API and settings


def test_test_connection_names_what_is_wrong(admin_api, page, instagram, far_end):
    url = f"/api/v1/meta/pages/{page.pk}/test-connection/"
    answer = admin_api.post(url).json()
    assert answer["ok"] is False and "access token" in answer["detail"]

    far_end.meta_pages[page.page_access_token] = ("555", "Someone else's page")
    answer = admin_api.post(url).json()
    assert answer["ok"] is False and "not to the Page id 1000001" in answer["detail"]

    far_end.meta_pages[page.page_access_token] = (page.page_id, "Acme Shop")
    far_end.meta_app_secrets[page.page_access_token] = "the real app secret"
    answer = admin_api.post(url).json()
    assert answer["ok"] is False and "app secret" in answer["detail"]

    far_end.meta_app_secrets[page.page_access_token] = SECRET
    assert admin_api.post(url).json() == {"ok": True, "detail": "Connected: Page Acme Shop."}
    page.refresh_from_db()
    assert page.status == "ok" and page.last_error == ""

    far_end.meta_pages[instagram.page_access_token] = (instagram.page_id, "IG Page")
    ig_url = f"/api/v1/meta/instagram-accounts/{instagram.pk}/test-connection/"
    answer = admin_api.post(ig_url).json()
    assert answer["ok"] is False and "17841400000001" in answer["detail"]
    far_end.meta_instagram[instagram.ig_user_id] = "acme.shop"
    answer = admin_api.post(ig_url).json()
    assert answer["ok"] is True and "@acme.shop" in answer["detail"]
    instagram.refresh_from_db()
    assert instagram.username == "acme.shop"


def test_secrets_are_write_only_and_agents_only_read(admin_api, api_for, agent_user):
    created = admin_api.post(
        "/api/v1/meta/instagram-accounts/",
        {
            "name": "Acme IG",
            "page_id": "1000003",
            "ig_user_id": "17841400000009",
            "page_access_token": "EAA-secret-token",
            "app_secret": "s3cret",
            "verify_token": "v",
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert "EAA-secret-token" not in created.content.decode()
    assert body["page_access_token_set"] is True and "page_access_token" not in body
    assert body["webhook_url"].endswith(f"/webhooks/meta/{body['uuid']}/")
    account = InstagramAccount.objects.get(pk=body["id"])
    assert account.page_access_token == "EAA-secret-token"
    # blank secrets keep what is stored
    admin_api.patch(
        f"/api/v1/meta/instagram-accounts/{account.pk}/", {"page_access_token": ""}, format="json"
    )
    account.refresh_from_db()
    assert account.page_access_token == "EAA-secret-token"

    missing = admin_api.post("/api/v1/meta/pages/", {"name": "P", "page_id": "12"}, format="json")
    assert missing.status_code == 400 and "page_access_token" in missing.json()
    bad_id = admin_api.post(
        "/api/v1/meta/pages/",
        {
            "name": "P",
            "page_id": "12x",
            "page_access_token": "t",
            "app_secret": "s",
            "verify_token": "v",
        },
        format="json",
    )
    assert bad_id.status_code == 400 and "page_id" in bad_id.json()

    agent = api_for(agent_user)
    assert agent.get("/api/v1/meta/instagram-accounts/").status_code == 200
    assert agent.post("/api/v1/meta/pages/", {"name": "x"}, format="json").status_code == 403
    assert agent.delete(f"/api/v1/meta/instagram-accounts/{account.pk}/").status_code == 403
    assert (
        agent.post(f"/api/v1/meta/instagram-accounts/{account.pk}/test-connection/").status_code
        == 403
    )


def test_deleting_an_account_previews_and_cascades(client, admin_api, page, instagram):
    signed_post(client, page, sample("messenger_text.json", page))
    signed_post(client, page, sample("messenger_postback.json", page))
    signed_post(client, instagram, sample("instagram_text.json", instagram))
    preview = admin_api.get(f"/api/v1/meta/pages/{page.pk}/deletion-preview/").json()
    assert preview == {"conversations": 1, "messages": 2, "total": 4, "irreversible": True}
    assert admin_api.delete(f"/api/v1/meta/pages/{page.pk}/").status_code == 204
    assert not Conversation.objects.filter(platform="facebook").exists()
    assert not Message.objects.filter(conversation__platform="facebook").exists()
    assert _inbound(instagram).count() == 1  # the other channel's rows stay


def test_the_settings_page_lists_accounts_and_admins_manage_them(
    client, admin_user, agent_user, page, instagram
):
    client.force_login(admin_user)
    content = client.get("/settings/meta/").content.decode()
    assert page.name in content and instagram.name in content
    assert f"/webhooks/meta/{page.uuid}/" in content
    assert "meta-app-secret" not in content and page.page_access_token not in content
    assert "/settings/meta/" in client.get("/settings/").content.decode()
    response = client.post(
        "/settings/meta/pages/new/",
        {
            "name": "Second",
            "page_id": "777",
            "page_access_token": "t",
            "app_secret": "s",
            "verify_token": "v",
            "is_active": "on",
        },
    )
    assert response.status_code == 302
    assert MessengerPage.objects.filter(company=admin_user.company, page_id="777").exists()
    response = client.post(
        "/settings/meta/pages/new/",
        {
            "name": "Dup",
            "page_id": "777",
            "page_access_token": "t",
            "app_secret": "s",
            "verify_token": "v",
        },
    )
    assert response.status_code == 200  # the form again, the error on its field
    assert (
        "Another Messenger page in your company has this Facebook Page id."
        in response.content.decode()
    )
    assert MessengerPage.objects.filter(company=admin_user.company, page_id="777").count() == 1

    client.force_login(agent_user)
    assert client.get("/settings/meta/").status_code == 200
    assert client.get("/settings/meta/pages/new/").status_code == 403
    assert client.get(f"/settings/meta/instagram/{instagram.pk}/delete/").status_code == 403
