"""At 390×844 in a real browser (issue 16): an agent picks a file in the reply box, quoting a
customer's message; a file the channel refuses is named before any upload; the sent image shows
in the thread as a preview (through the tenant-scoped download view) and goes to the Graph
API's media endpoint (the far end at the wire) when the worker sends it."""

import io

import pytest
from PIL import Image
from playwright.sync_api import expect

from messaging.models import Message
from messaging.tasks import deliver_message

from .factories import ConversationFactory, MessageFactory
from .live import *  # noqa: F403  (fixtures: daphne_server, browser; helpers log_in, wait_live)
from .test_browser import _screenshot, _team, _wait_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 200), (200, 80, 40)).save(buffer, "PNG")
    return buffer.getvalue()


def test_a_file_from_the_picker_quoting_a_message_shows_in_the_thread_at_phone_width(
    daphne_server,  # noqa: F405
    browser,  # noqa: F405
    far_end,
):
    company, _alice, bob = _team()
    conversation = ConversationFactory(company=company, client__name="Maria Lopez")
    asked = MessageFactory(
        conversation=conversation, external_id="wamid.asked.1", body="A photo of the lid?"
    )
    page = log_in(browser, daphne_server, bob, viewport={"width": 390, "height": 844})  # noqa: F405
    page.goto(f"{daphne_server.url}/inbox/{conversation.pk}/")
    wait_live(page)  # noqa: F405

    page.locator(f'#messages li[data-message-id="{asked.pk}"]').get_by_role(
        "button", name="Reply to this message"
    ).click()
    expect(page.locator('[data-role="reply-quote"]')).to_contain_text("A photo of the lid?")

    picker = page.locator('#reply-box [data-role="reply-file-input"]')
    # A type WhatsApp does not send is named at once, and nothing is uploaded.
    picker.set_input_files(
        files=[{"name": "anim.gif", "mimeType": "image/gif", "buffer": b"GIF89a" + b"0" * 64}]
    )
    expect(page.locator('[data-role="reply-files-errors"]')).to_contain_text("anim.gif")
    expect(page.locator(".reply-file")).to_have_count(0)

    png = _png()
    picker.set_input_files(files=[{"name": "lid.png", "mimeType": "image/png", "buffer": png}])
    expect(page.locator(".reply-file")).to_contain_text("lid.png")
    page.fill("#reply-box textarea", "Here it is")
    page.click("#reply-box button[type=submit]")

    sent = _wait_for(
        lambda: Message.objects.filter(conversation=conversation, direction="out").first()
    )
    item = page.locator(f'#messages li[data-message-id="{sent.pk}"]')
    preview = item.locator(".attachment-preview img")
    expect(preview).to_be_visible()
    assert _wait_for(lambda: preview.evaluate("img => img.naturalWidth") or None) == 320
    expect(page.locator(".reply-file")).to_have_count(0)  # the box is fresh again
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    box = preview.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    _screenshot(page, "reply-with-file-390")

    deliver_message(sent.pk)  # what the Celery worker runs
    assert [(u.filename, u.size) for u in far_end.uploads] == [("lid.png", len(png))]
    assert [(s.kind, s.body, s.quoted) for s in far_end.sent] == [
        ("image", "Here it is", "wamid.asked.1")
    ]
    expect(item).to_have_attribute("data-status", "sent")
