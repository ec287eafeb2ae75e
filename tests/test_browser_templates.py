"""At phone width (390×844), in a real browser against a live daphne: a WhatsApp Cloud
conversation whose 24-hour window is closed offers the number's approved templates; the agent
picks one, fills its variables while the preview follows, and sends it — the Graph API fake
(at the wire) receives the template with those parameters. The number's templates page too."""

import os
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import Role
from channels_integrations.whatsapp import templates
from messaging.models import Message
from messaging.services import Sender, ingest_inbound
from messaging.tasks import deliver_message

from .factories import CompanyFactory, ConversationFactory, UserFactory, WhatsAppNumberFactory
from .live import *  # noqa: F403  (fixtures: daphne_server, browser; helpers log_in, wait_live)
from .test_whatsapp_templates import CATALOGUE

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PHONE = {"width": 390, "height": 844}


def _no_sideways(page, name=""):
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    folder = os.environ.get("SCREENSHOTS")  # keep a picture: SCREENSHOTS=<dir>
    if folder and name:
        page.screenshot(path=os.path.join(folder, f"{name}.png"))


def test_a_closed_window_offers_a_template_and_sends_it_from_a_phone(
    daphne_server, browser, far_end
):
    company = CompanyFactory(name="Acme Logistics")
    admin = UserFactory(company=company, username="alice", role=Role.ADMIN)
    bob = UserFactory(company=company, username="bob", first_name="Bob")
    number = WhatsAppNumberFactory(company=company, cloud_business_account_id="102290129340398")
    far_end.templates = list(CATALOGUE)
    templates.sync_templates(number)
    conversation = ConversationFactory(
        company=company,
        source=number,
        external_thread_id="4917099900001",
        client__name="Ann Smith",
        client__phone="+4917099900001",
        last_inbound_at=timezone.now() - timedelta(hours=30),
    )

    page = log_in(browser, daphne_server, bob, viewport=PHONE)  # noqa: F405
    page.goto(f"{daphne_server.url}/inbox/{conversation.pk}/")
    wait_live(page)  # noqa: F405
    expect(page.locator('[data-role="window"]')).to_have_text("Window closed — send a template")
    box = page.locator("#reply-box")
    expect(box.locator("textarea")).to_have_count(0)  # no free text: the UI prevents it
    picker = box.locator("[data-template-picker]")
    expect(picker.locator("option")).to_have_count(3)  # "Choose…" and the two approved ones
    picker.select_option("order_ready:en_US")
    fields = box.locator('[data-template-key="order_ready:en_US"]')
    expect(fields).to_be_visible()
    expect(box.locator('[data-template-key="welcome:en_US"]')).to_be_hidden()
    fields.locator('[data-var="body:1"]').fill("Ann")
    fields.locator('[data-var="body:2"]').fill("A-42")
    preview = fields.locator("[data-template-preview]")
    expect(preview).to_contain_text("Hello Ann, your order A-42 is ready.")
    _no_sideways(page, "template-picker-390")
    send = box.get_by_role("button", name="Send template")
    button = send.bounding_box()
    assert button["x"] >= 0 and button["x"] + button["width"] <= 390

    send.click()
    expect(page.locator("#messages")).to_contain_text("Hello Ann, your order A-42 is ready.")
    message = Message.objects.get(conversation=conversation, direction="out")
    assert message.metadata["template"]["name"] == "order_ready"
    deliver_message(message.pk)  # what the Celery worker runs
    [sent] = far_end.sent
    assert sent.template["name"] == "order_ready"
    parameters = sent.template["components"][0]["parameters"]
    assert [p["text"] for p in parameters] == ["Ann", "A-42"]
    expect(page.locator(f'#messages li[data-message-id="{message.pk}"]')).to_have_attribute(
        "data-status", "sent"
    )
    # The picker is back for the next one (the window is still closed).
    expect(page.locator("#reply-box [data-template-picker]")).to_be_visible()
    page.locator("#messages").click()  # focus away from the reply box

    # The client writes: the window opens live, and the reply box offers free text again.
    ingest_inbound(
        number,
        "4917099900001",
        "wamid.in.back",
        Sender(address="+4917099900001", phone="+4917099900001"),
        "Thanks! One more question",
    )
    expect(page.locator('[data-role="window"]')).to_contain_text("Window open — closes at")
    expect(page.locator("#reply-box textarea[name=body]")).to_be_visible()
    _no_sideways(page, "window-open-390")

    admin_page = log_in(browser, daphne_server, admin, viewport=PHONE)  # noqa: F405
    admin_page.goto(f"{daphne_server.url}/settings/whatsapp/{number.pk}/templates/")
    expect(admin_page.locator("[data-template]")).to_have_count(5)
    sync = admin_page.get_by_role("button", name="Sync templates")
    expect(sync).to_be_visible()  # pressing it: test_whatsapp_templates (daphne has no fake)
    sync_box = sync.bounding_box()
    assert sync_box["x"] >= 0 and sync_box["x"] + sync_box["width"] <= 390
    _no_sideways(admin_page, "templates-page-390")

    # The broadcast form offers the approved templates, with a line per variable.
    admin_page.goto(f"{daphne_server.url}/broadcasts/new/")
    template = admin_page.get_by_label("Template (Cloud numbers)")
    expect(template).to_be_visible()
    template.select_option(f"{number.pk}:order_ready:en_US")
    admin_page.get_by_label("Template variables").fill("{client_name|friend}\nSPRING")
    _no_sideways(admin_page, "broadcast-template-390")
