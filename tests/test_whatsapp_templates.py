"""WhatsApp Cloud message templates and the 24-hour customer-service window, end to end: the
templates are read from the Graph API fake at the wire (tests.far_end, two pages and more),
sends go through the real channel, outbox and send policy to the same fake."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from channels_integrations.models import BroadcastRecipient, WhatsAppTemplate
from channels_integrations.whatsapp import broadcasts, templates
from messaging import channels, selectors
from messaging.models import Message
from messaging.selectors.window import window_of
from messaging.tasks import deliver_message

from .factories import ClientFactory, ConversationFactory, WhatsAppNumberFactory

pytestmark = pytest.mark.django_db

WABA = "102290129340398"


def meta_template(name, status="APPROVED", body="Hello {{1}}, your order {{2}} is ready.", **extra):
    components = [{"type": "BODY", "text": body}]
    if extra.get("header"):
        components.insert(0, extra["header"])
    components.append({"type": "FOOTER", "text": "Reply STOP to opt out"})
    return {
        "name": name,
        "language": extra.get("language", "en_US"),
        "status": status,
        "category": "UTILITY",
        "components": components,
        "id": f"id-{name}",
    }


CATALOGUE = [
    meta_template("order_ready"),
    meta_template("welcome", body="Welcome, {{1}}!"),
    meta_template("promo_pending", status="PENDING"),
    meta_template("old_rejected", status="REJECTED"),
    meta_template(
        "with_image",
        header={"type": "HEADER", "format": "IMAGE", "example": {"header_handle": ["x"]}},
    ),
]


@pytest.fixture
def number(company):
    return WhatsAppNumberFactory(company=company, cloud_business_account_id=WABA)


@pytest.fixture
def synced(number, far_end):
    far_end.templates = list(CATALOGUE)
    templates.sync_templates(number)
    return number


def closed_conversation(number, phone="+4917099900001", name="Ann"):
    return ConversationFactory(
        company=number.company,
        source=number,
        external_thread_id=phone.lstrip("+"),
        client__phone=phone,
        client__name=name,
        last_inbound_at=timezone.now() - timedelta(hours=25),
    )


# ---------------------------------------------------------------- sync


def test_sync_reads_every_page_at_the_wire_and_offers_only_approved(number, far_end, admin_api):
    far_end.templates = list(CATALOGUE)  # 5 templates, 2 per page: three requests
    response = admin_api.post(f"/api/v1/whatsapp/numbers/{number.pk}/templates/sync/")
    assert response.status_code == 200, response.content
    assert response.json() == {"templates": 5, "approved": 3, "removed": 0}
    pages = far_end.template_requests
    assert [page.get("after") for page in pages] == [None, "cursor-2", "cursor-4"]
    assert {page["waba_id"] for page in pages} == {WABA}
    assert all(page["fields"] == "name,language,status,category,components" for page in pages)
    assert all(page["limit"] for page in pages)

    listed = admin_api.get(f"/api/v1/whatsapp/numbers/{number.pk}/templates/").json()
    assert len(listed) == 5
    offered = {row["name"] for row in listed if row["offered"]}
    assert offered == {"order_ready", "welcome"}  # approved, and no media header
    order_ready = next(row for row in listed if row["name"] == "order_ready")
    assert order_ready["variables"] == {"body": 2}
    assert order_ready["status"] == "APPROVED"
    names = {option.name for option in channels.get("whatsapp").template_options(number)}
    assert names == {"order_ready", "welcome"}


def test_a_second_sync_updates_statuses_and_drops_what_meta_no_longer_lists(synced, far_end):
    far_end.templates = [meta_template("order_ready", status="PAUSED"), meta_template("new_one")]
    counts = templates.sync_templates(synced)
    assert counts == {"templates": 2, "approved": 1, "removed": 4}
    rows = {t.name: t.status for t in WhatsAppTemplate.objects.filter(number=synced)}
    assert rows == {"order_ready": "PAUSED", "new_one": "APPROVED"}


def test_sync_failures_say_why_and_keep_what_was_stored(synced, far_end, admin_api):
    from .far_end import graph_error

    far_end.script = [graph_error(190, status=401)]
    response = admin_api.post(f"/api/v1/whatsapp/numbers/{synced.pk}/templates/sync/")
    assert response.status_code == 502
    assert "access token" in response.json()["detail"]
    assert WhatsAppTemplate.objects.filter(number=synced).count() == 5


def test_sync_needs_a_business_account_id_in_digits(company, admin_api, far_end):
    number = WhatsAppNumberFactory(company=company)
    response = admin_api.post(f"/api/v1/whatsapp/numbers/{number.pk}/templates/sync/")
    assert response.status_code == 400
    assert "cloud_business_account_id" in response.json()
    response = admin_api.patch(
        f"/api/v1/whatsapp/numbers/{number.pk}/",
        {"cloud_business_account_id": "12ab"},
        format="json",
    )
    assert response.status_code == 400
    assert "cloud_business_account_id" in response.json()
    ok = admin_api.patch(
        f"/api/v1/whatsapp/numbers/{number.pk}/",
        {"cloud_business_account_id": WABA},
        format="json",
    )
    assert ok.status_code == 200 and ok.json()["cloud_business_account_id"] == WABA


def test_templates_of_another_company_are_a_404(synced, api_for, other_company, far_end):
    from .factories import UserFactory

    stranger = api_for(UserFactory(company=other_company, role="admin"))
    assert stranger.get(f"/api/v1/whatsapp/numbers/{synced.pk}/templates/").status_code == 404
    sync = stranger.post(f"/api/v1/whatsapp/numbers/{synced.pk}/templates/sync/")
    assert sync.status_code == 404
    assert far_end.template_requests[-1:] and len(far_end.template_requests) == 3  # untouched


def test_the_daily_beat_task_syncs_every_active_cloud_number(synced, far_end, company):
    from channels_integrations.whatsapp.tasks import sync_whatsapp_templates

    WhatsAppNumberFactory(company=company, provider="web", cloud_business_account_id=WABA)
    far_end.template_requests.clear()
    assert sync_whatsapp_templates() == {"synced": 1, "failed": 0}
    assert len(far_end.template_requests) == 3


# ---------------------------------------------------------------- the window


def test_the_window_is_open_for_less_than_24_hours_and_closed_at_exactly_24():
    wrote = timezone.now()
    day = timedelta(hours=24)
    just_before = window_of(day, wrote, wrote + day - timedelta(microseconds=1))
    assert just_before.is_open and just_before.closes_at == wrote + day
    exactly = window_of(day, wrote, wrote + day)
    assert not exactly.is_open and exactly.state == "closed"
    assert window_of(day, None).state == "closed"  # the client never wrote
    assert window_of(None, wrote) is None  # a channel without a window


def test_the_window_follows_inbound_messages_and_qr_numbers_have_none(number, company, api):
    from messaging.services import Sender, ingest_inbound

    conversation = closed_conversation(number)
    assert selectors.reply_window(conversation).state == "closed"
    ingest_inbound(
        number,
        conversation.external_thread_id,
        "wamid.in.new",
        Sender(address="+4917099900001", phone="+4917099900001"),
        "Hello again",
    )
    conversation.refresh_from_db()
    window = selectors.reply_window(conversation)
    assert window.is_open
    assert abs(window.closes_at - (timezone.now() + timedelta(hours=24))) < timedelta(minutes=1)

    web = WhatsAppNumberFactory(company=company, provider="web")
    qr = ConversationFactory(company=company, source=web, last_inbound_at=None)
    assert selectors.reply_window(qr) is None

    detail = api.get(f"/api/v1/conversations/{conversation.pk}/").json()
    assert detail["window"]["state"] == "open" and detail["window"]["closes_at"]
    listed = {
        row["id"]: row["window"] for row in api.get("/api/v1/conversations/").json()["results"]
    }
    assert listed[conversation.pk]["state"] == "open"
    assert listed[qr.pk] is None

    # The number becomes a Cloud one: its conversations' window shows on the next read.
    web.provider = "cloud"
    web.save(update_fields=["provider"])
    listed = {
        row["id"]: row["window"] for row in api.get("/api/v1/conversations/").json()["results"]
    }
    assert listed[qr.pk] == {"state": "closed", "closes_at": None}


@pytest.fixture
def api(api_for, agent_user):
    return api_for(agent_user)


def test_free_text_is_refused_when_the_window_is_closed_and_nothing_is_queued(
    synced, api, queued_sends, far_end
):
    conversation = closed_conversation(synced)
    response = api.post(
        f"/api/v1/conversations/{conversation.pk}/messages/", {"body": "Hi!"}, format="json"
    )
    assert response.status_code == 400
    assert "window is closed" in response.json()["body"][0]
    assert not Message.objects.filter(conversation=conversation).exists()
    assert queued_sends == [] and far_end.sent == []


def test_free_text_outside_the_window_is_refused_by_meta_too(far_end, eager_celery):
    """The fake refuses as Meta does (131047) — what the server-side check spares agents."""
    from messaging.services import send_message

    conversation = ConversationFactory(client__phone="+4917099900077")
    far_end.closed_windows.add("+4917099900077")
    message = send_message(conversation, None, "late")
    deliver_message(message.pk)
    message.refresh_from_db()
    assert message.status == "failed" and "24 hours" in message.error


# ---------------------------------------------------------------- a template send


def test_a_template_send_reaches_the_graph_fake_with_its_parameters(
    synced, api, far_end, queued_sends, django_capture_on_commit_callbacks
):
    conversation = closed_conversation(synced)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            f"/api/v1/conversations/{conversation.pk}/messages/",
            {
                "template": {
                    "name": "order_ready",
                    "language": "en_US",
                    "variables": {"body": ["Ann", "A-42"]},
                }
            },
            format="json",
        )
    assert response.status_code == 201, response.content
    body = "Hello Ann, your order A-42 is ready.\n\nReply STOP to opt out"
    assert response.json()["body"] == body
    assert response.json()["status"] == "queued"
    [(message_id, _countdown)] = queued_sends
    deliver_message(message_id)
    [sent] = far_end.sent
    assert sent.to_address == "+4917099900001"
    assert sent.template == {
        "name": "order_ready",
        "language": {"code": "en_US"},
        "components": [
            {
                "type": "body",
                "parameters": [{"type": "text", "text": "Ann"}, {"type": "text", "text": "A-42"}],
            }
        ],
    }
    message = Message.objects.get(pk=message_id)
    assert message.status == "sent" and message.body == body


@pytest.mark.parametrize(
    ("template", "field"),
    [
        ({"name": "order_ready", "language": "en_US", "variables": {"body": ["Ann"]}}, "variables"),
        ({"name": "order_ready", "language": "en_US", "variables": {}}, "variables"),
        (
            {"name": "order_ready", "language": "en_US", "variables": {"body": ["A", " "]}},
            "variables",
        ),
        (
            {
                "name": "order_ready",
                "language": "en_US",
                "variables": {"body": ["A", "B"], "x": []},
            },
            "variables",
        ),
        ({"name": "nope", "language": "en_US"}, None),
        ({"name": "promo_pending", "language": "en_US"}, None),
        ({"name": "order_ready", "language": "de"}, None),
        ({"name": "with_image", "language": "en_US"}, None),  # its header has no file yet
    ],
)
def test_template_sends_are_checked_and_name_the_field(synced, api, queued_sends, template, field):
    conversation = closed_conversation(synced)
    response = api.post(
        f"/api/v1/conversations/{conversation.pk}/messages/", {"template": template}, format="json"
    )
    assert response.status_code == 400, response.content
    errors = response.json()["template"]
    if field:
        assert field in errors
    else:
        assert errors if isinstance(errors, list) else errors["non_field_errors"]
    assert not Message.objects.filter(conversation=conversation).exists()
    assert queued_sends == []


def test_a_template_of_another_number_is_refused(synced, company, api, far_end):
    other = WhatsAppNumberFactory(company=company, cloud_business_account_id="555")
    far_end.templates = [meta_template("only_there", body="Hi")]
    templates.sync_templates(other)
    conversation = closed_conversation(synced)
    response = api.post(
        f"/api/v1/conversations/{conversation.pk}/messages/",
        {"template": {"name": "only_there", "language": "en_US"}},
        format="json",
    )
    assert response.status_code == 400 and "template" in response.json()


def test_text_and_template_together_are_refused(synced, api):
    conversation = closed_conversation(synced)
    response = api.post(
        f"/api/v1/conversations/{conversation.pk}/messages/",
        {"body": "hi", "template": {"name": "welcome", "language": "en_US"}},
        format="json",
    )
    assert response.status_code == 400 and "body" in response.json()


# ---------------------------------------------------------------- broadcasts


def _run(broadcast):
    for _ in range(20):
        result = broadcasts.run_broadcast_batch(broadcast.pk)
        if result.again_in is None:
            return


def test_a_template_broadcast_reaches_each_recipient_with_their_name(
    synced, admin_user, far_end, settings
):
    settings.BROADCAST_RATE_PER_MINUTE = 1000
    ann = ClientFactory(company=synced.company, name="Ann", phone="+4917099900011")
    bob = ClientFactory(company=synced.company, name="Bob", phone="+4917099900012")
    broadcast = broadcasts.create_broadcast(
        admin_user,
        number=synced,
        text="",
        client_ids=[ann.pk, bob.pk],
        phones="+4917099900013",
        template={
            "name": "order_ready",
            "language": "en_US",
            "variables": {
                "body": [
                    {"kind": "client_name", "text": "friend"},
                    {"kind": "text", "text": "SPRING"},
                ]
            },
        },
    )
    assert broadcast.text.startswith("Hello [client name], your order SPRING")
    _run(broadcast)
    got = {
        sent.to_address: [p["text"] for p in sent.template["components"][0]["parameters"]]
        for sent in far_end.sent
    }
    assert got == {
        "+4917099900011": ["Ann", "SPRING"],
        "+4917099900012": ["Bob", "SPRING"],
        "+4917099900013": ["friend", "SPRING"],  # no client: the fallback
    }
    assert all(s.template["name"] == "order_ready" for s in far_end.sent)
    statuses = set(BroadcastRecipient.objects.values_list("status", flat=True))
    assert statuses == {"sent"}


def test_a_free_text_broadcast_outside_the_window_is_refused_up_front(
    synced, admin_user, admin_api, far_end
):
    inside = closed_conversation(synced, phone="+4917099900021")
    inside.last_inbound_at = timezone.now() - timedelta(hours=2)
    inside.save()
    closed_conversation(synced, phone="+4917099900022")
    phones = "+4917099900021\n+4917099900022\n+4917099900023"
    with pytest.raises(ValidationError) as refused:
        broadcasts.create_broadcast(admin_user, number=synced, text="Sale!", phones=phones)
    assert refused.value.message_dict["text"] == [
        "2 of 3 recipients are outside the 24-hour window; use a template."
    ]
    response = admin_api.post(
        "/api/v1/whatsapp/broadcasts/",
        {"number": synced.pk, "text": "Sale!", "phones": phones},
        format="json",
    )
    assert (
        response.status_code == 400 and "outside the 24-hour window" in response.json()["text"][0]
    )
    assert not BroadcastRecipient.objects.exists() and far_end.sent == []

    only_inside = broadcasts.create_broadcast(
        admin_user, number=synced, text="Sale!", phones="+4917099900021"
    )
    assert only_inside.pk


def test_qr_numbers_have_no_window_for_broadcasts(company, admin_user):
    web = WhatsAppNumberFactory(company=company, provider="web")
    assert broadcasts.create_broadcast(admin_user, number=web, text="Hi", phones="+4917099900031")


def test_a_template_broadcast_checks_its_variables(synced, admin_api):
    response = admin_api.post(
        "/api/v1/whatsapp/broadcasts/",
        {
            "number": synced.pk,
            "phones": "+4917099900041",
            "template": {
                "name": "order_ready",
                "language": "en_US",
                "variables": {"body": [{"kind": "text", "text": "only one"}]},
            },
        },
        format="json",
    )
    assert response.status_code == 400
    assert "variables" in response.json()["template"]


# ---------------------------------------------------------------- pages


def test_the_templates_page_lists_them_and_admins_sync(synced, client, admin_user, far_end):
    client.force_login(admin_user)
    page = client.get(f"/settings/whatsapp/{synced.pk}/templates/")
    content = page.content.decode()
    assert page.status_code == 200
    assert "order_ready" in content and "promo_pending" in content and "Sync templates" in content
    far_end.template_requests.clear()
    response = client.post(f"/settings/whatsapp/{synced.pk}/templates/sync/", follow=True)
    assert "5 templates synced (3 approved, 0 removed)" in response.content.decode()
    assert len(far_end.template_requests) == 3


def test_agents_read_the_templates_page_but_do_not_sync(synced, client, agent_user, far_end):
    client.force_login(agent_user)
    page = client.get(f"/settings/whatsapp/{synced.pk}/templates/")
    assert page.status_code == 200 and "Sync templates" not in page.content.decode()
    assert client.post(f"/settings/whatsapp/{synced.pk}/templates/sync/").status_code == 403


def test_another_companys_templates_page_is_a_404(synced, client, other_company):
    from .factories import UserFactory

    client.force_login(UserFactory(company=other_company, role="admin"))
    assert client.get(f"/settings/whatsapp/{synced.pk}/templates/").status_code == 404
    assert client.post(f"/settings/whatsapp/{synced.pk}/templates/sync/").status_code == 404


def test_the_reply_box_offers_templates_when_closed_and_the_form_sends_one(
    synced, client, agent_user, queued_sends, django_capture_on_commit_callbacks
):
    conversation = closed_conversation(synced)
    client.force_login(agent_user)
    page = client.get(f"/inbox/{conversation.pk}/").content.decode()
    assert "Window closed — send a template" in page
    assert 'data-template-key="order_ready:en_US"' in page
    assert 'data-template-key="promo_pending:en_US"' not in page  # not approved
    assert 'name="body"' not in page.split('id="reply-box"')[1].split("</form>")[0]

    url = f"/inbox/{conversation.pk}/reply/"
    refused = client.post(url, {"body": "Hi there"})
    assert refused.status_code == 400 and "window is closed" in refused.content.decode()
    missing = client.post(
        url, {"template": "order_ready:en_US", "var:order_ready:en_US:body:1": "Ann"}
    )
    assert missing.status_code == 400 and "needs 2 variable" in missing.content.decode()
    assert not Message.objects.filter(conversation=conversation).exists()
    with django_capture_on_commit_callbacks(execute=True):
        sent = client.post(
            url,
            {
                "template": "order_ready:en_US",
                "var:order_ready:en_US:body:1": "Ann",
                "var:order_ready:en_US:body:2": "A-42",
            },
        )
    assert sent.status_code == 302
    message = Message.objects.get(conversation=conversation)
    assert message.body.startswith("Hello Ann, your order A-42 is ready.")
    assert len(queued_sends) == 1


def test_an_open_window_shows_when_it_closes(synced, client, agent_user):
    conversation = closed_conversation(synced)
    wrote = timezone.now() - timedelta(hours=1)
    conversation.last_inbound_at = wrote
    conversation.save()
    client.force_login(agent_user)
    page = client.get(f"/inbox/{conversation.pk}/").content.decode()
    closes = timezone.localtime(wrote + timedelta(hours=24)).strftime("%H:%M")
    assert f"Window open — closes at {closes}" in page
    assert 'name="body"' in page


def test_the_send_api_refuses_free_text_to_a_new_phone_and_sends_a_template(
    synced, api, far_end, queued_sends, django_capture_on_commit_callbacks
):
    from messaging.models import Conversation

    url = f"/api/v1/whatsapp/numbers/{synced.pk}/send/"
    refused = api.post(url, {"phone": "+4917099900051", "message": "Hi"}, format="json")
    assert refused.status_code == 400 and "window is closed" in refused.json()["message"][0]
    bad = api.post(
        url,
        {"phone": "+4917099900051", "template": {"name": "welcome", "language": "en_US"}},
        format="json",
    )
    assert bad.status_code == 400 and "variables" in bad.json()["template"]
    assert not Conversation.objects.exists() and queued_sends == []  # nothing written

    with django_capture_on_commit_callbacks(execute=True):
        sent = api.post(
            url,
            {
                "phone": "+4917099900051",
                "template": {
                    "name": "welcome",
                    "language": "en_US",
                    "variables": {"body": ["Ann"]},
                },
            },
            format="json",
        )
    assert sent.status_code == 202, sent.content
    assert sent.json()["message"]["body"].startswith("Welcome, Ann!")
    [(message_id, _countdown)] = queued_sends
    deliver_message(message_id)
    [graph] = far_end.sent
    assert graph.to_address == "+4917099900051" and graph.template["name"] == "welcome"
    neither = api.post(url, {"phone": "+4917099900051"}, format="json")
    assert neither.status_code == 400 and "message" in neither.json()


def test_the_broadcast_form_sends_a_template_with_client_names(
    synced, client, admin_user, far_end, settings
):
    settings.BROADCAST_RATE_PER_MINUTE = 1000
    ann = ClientFactory(company=synced.company, name="Ann", phone="+4917099900061")
    client.force_login(admin_user)
    page = client.get("/broadcasts/new/").content.decode()
    assert "order_ready (en_US)" in page and "promo_pending" not in page
    form = {
        "number": synced.pk,
        "name": "Spring",
        "text": "",
        "template": f"{synced.pk}:order_ready:en_US",
        "template_variables": "{client_name|friend}\nSPRING",
        "audience": "chosen",
        "clients": [ann.pk],
        "phones": "+4917099900062",
        "when": "now",
    }
    wrong = client.post("/broadcasts/new/", {**form, "template_variables": "only one"})
    assert wrong.status_code == 200 and "write one line for each" in wrong.content.decode()
    free = client.post("/broadcasts/new/", {**form, "template": "", "text": "Sale!"})
    assert "2 of 2 recipients are outside the 24-hour window" in free.content.decode()
    created = client.post("/broadcasts/new/", form)
    assert created.status_code == 302
    broadcast = synced.broadcasts.get()
    assert broadcast.template_name == "order_ready"
    detail = client.get(created["Location"]).content.decode()
    assert "order_ready (en_US)" in detail
    _run(broadcast)
    got = {s.to_address: s.template["components"][0]["parameters"][0]["text"] for s in far_end.sent}
    assert got == {"+4917099900061": "Ann", "+4917099900062": "friend"}


def test_a_numbers_templates_are_counted_before_its_deletion_and_go_with_it(synced, admin_user):
    from channels_integrations.whatsapp import numbers

    assert numbers.deletion_preview(synced)["templates"] == 5
    numbers.delete_number(admin_user, synced)
    assert not WhatsAppTemplate.objects.exists()


# ---------------------------------------------------------------- media headers

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40


def _set_header(client, number, template, name="header.png", content=PNG, kind="image/png"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post(
        f"/settings/whatsapp/{number.pk}/templates/{template.pk}/header/",
        {"file": SimpleUploadedFile(name, content, content_type=kind)},
        follow=True,
    )


def test_a_media_header_template_is_offered_once_an_admin_sets_its_file(
    synced, client, admin_user, agent_user, far_end
):
    with_image = synced.templates.get(name="with_image")
    assert (with_image.header_format, with_image.supported) == ("image", True)
    assert not with_image.is_offered  # no file yet: a send would be refused by Meta
    page = client_for(client, admin_user).get(f"/settings/whatsapp/{synced.pk}/templates/")
    assert "not offered until a file is set" in page.content.decode()

    # The file must be what a Cloud number sends as an image.
    refused = _set_header(client, synced, with_image, "menu.pdf", b"%PDF-1.4", "application/pdf")
    assert "takes a image, not a document" in refused.content.decode()
    with_image.refresh_from_db()
    assert not with_image.header_file

    done = _set_header(client, synced, with_image)
    assert "the template is offered now" in done.content.decode()
    with_image.refresh_from_db()
    assert with_image.is_offered and with_image.header_content_type == "image/png"
    names = {option.name for option in channels.get("whatsapp").template_options(synced)}
    assert "with_image" in names

    client.force_login(agent_user)
    forbidden = client.post(f"/settings/whatsapp/{synced.pk}/templates/{with_image.pk}/header/")
    assert forbidden.status_code == 403


def client_for(client, user):
    client.force_login(user)
    return client


def test_a_media_header_template_goes_out_with_its_file_uploaded_once(
    synced, client, admin_user, api, far_end, queued_sends, django_capture_on_commit_callbacks
):
    with_image = synced.templates.get(name="with_image")
    refused = api.post(
        f"/api/v1/conversations/{closed_conversation(synced).pk}/messages/",
        {
            "template": {
                "name": "with_image",
                "language": "en_US",
                "variables": {"body": ["A", "B"]},
            }
        },
        format="json",
    )
    assert refused.status_code == 400
    assert "an admin sets its file" in str(refused.json()["template"])
    client.force_login(admin_user)
    _set_header(client, synced, with_image)

    for phone in ("+4917099900002", "+4917099900003"):
        conversation = closed_conversation(synced, phone=phone)
        with django_capture_on_commit_callbacks(execute=True):
            response = api.post(
                f"/api/v1/conversations/{conversation.pk}/messages/",
                {
                    "template": {
                        "name": "with_image",
                        "language": "en_US",
                        "variables": {"body": ["Ann", "A-42"]},
                    }
                },
                format="json",
            )
        assert response.status_code == 201, response.content
    for message_id, _countdown in queued_sends:
        deliver_message(message_id)
    [upload] = far_end.uploads  # one upload serves every send of this header
    assert (upload.content_type, upload.size) == ("image/png", len(PNG))
    assert len(far_end.sent) == 2
    for sent in far_end.sent:
        header, body = sent.template["components"]
        assert header == {
            "type": "header",
            "parameters": [{"type": "image", "image": {"id": upload.media_id}}],
        }
        assert body["type"] == "body"
    assert Message.objects.filter(status="sent").count() == 2
