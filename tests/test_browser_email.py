"""An email conversation in a real browser at phone width (390×844): it looks like email
(subject, From/To/Cc, the HTML in a sandboxed frame whose remote images wait for the agent)
and answers like email (subject and copies in the reply box; Enter is a new line, Ctrl+Enter
sends). Debian's Chromium driven by Playwright against a live daphne, as in test_browser.py.
"""

import base64
import time

import pytest
from playwright.sync_api import expect

from messaging.models import Message
from messaging.services import Sender, ingest_inbound

from .factories import EmailAccountFactory
from .live import *  # noqa: F403  (fixtures: daphne_server, browser; helpers log_in, wait_live)
from .test_browser import _screenshot, _team, _wait_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
REMOTE = "https://images.example.test/logo.png"


def _email_conversation(company):
    account = EmailAccountFactory(
        company=company, address="help@acme.test", display_name="Acme Support"
    )
    result = ingest_inbound(
        account,
        external_thread_id="order1042.1@example.org",
        external_message_id="order1042.1@example.org",
        sender=Sender(address="maria@example.org", name="Maria Lopez", email="maria@example.org"),
        body="Any news about order 1042?\n\nOn Mon, 23 Nov 2026, Acme Support wrote:\n"
        "> We are checking with the warehouse.",
        subject="Order 1042 has not arrived",
        metadata={
            "subject": "Order 1042 has not arrived",
            "message_id": "order1042.1@example.org",
            "references": [],
            "to": ["Acme Support <help@acme.test>"],
            "cc": ["Tom Lee <tom@example.org>"],
            "html": f'<p>Any news about <b>order 1042</b>?</p><img src="{REMOTE}" alt="logo">',
        },
    )
    return result.conversation, result.message


def test_an_email_conversation_on_a_phone(daphne_server, browser):  # noqa: F405
    company, _alice, bob = _team()
    conversation, mail = _email_conversation(company)
    page = log_in(browser, daphne_server, bob, viewport={"width": 390, "height": 844})  # noqa: F405
    remote_requests = []

    def serve_image(route):
        remote_requests.append(route.request.url)
        route.fulfill(status=200, content_type="image/png", body=PIXEL)

    page.route("https://images.example.test/**", serve_image)
    page.goto(f"{daphne_server.url}/inbox/{conversation.pk}/")
    wait_live(page)  # noqa: F405

    # Looks like email: subject, From, To, Cc.
    expect(page.locator('[data-role="conversation-subject"]')).to_have_text(
        "Order 1042 has not arrived"
    )
    item = page.locator(f'#messages li[data-message-id="{mail.pk}"]')
    expect(item.locator('[data-role="from"]')).to_have_text("Maria Lopez <maria@example.org>")
    expect(item.locator('[data-role="to"]')).to_have_text("Acme Support <help@acme.test>")
    expect(item.locator('[data-role="cc"]')).to_have_text("Tom Lee <tom@example.org>")
    for role in ("from", "to", "cc"):
        expect(item.locator(f'[data-role="{role}"]')).to_be_visible()

    # The HTML in a sandboxed frame: no scripts, not same-origin; its remote image blocked.
    frame_element = item.locator("iframe.mail-frame")
    expect(frame_element).to_be_visible()
    sandbox = frame_element.get_attribute("sandbox")
    assert "allow-scripts" not in sandbox and "allow-same-origin" not in sandbox
    # The frame loads lazily: on a busy machine it may not have started until it is in view.
    frame_element.scroll_into_view_if_needed()
    frame = _wait_for(lambda: frame_element.element_handle().content_frame(), timeout=30.0)
    expect(frame.locator("b")).to_have_text("order 1042")
    frame.wait_for_load_state("load")
    assert frame.locator("img").evaluate("img => img.complete && img.naturalWidth") == 0
    assert remote_requests == []  # the CSP stopped it before any request
    notice = item.locator('[data-role="remote-images"]')
    expect(notice).to_contain_text("Remote images are blocked")
    _screenshot(page, "email-conversation-390")

    notice.get_by_role("link", name="Load remote images").click()
    expect(notice).to_contain_text("Remote images are shown")
    expect(notice.get_by_role("link", name="Load remote images")).to_be_hidden()
    deadline = time.monotonic() + 15
    while not remote_requests and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert remote_requests == [REMOTE]
    frame = page.frame(name=f"mail-frame-{mail.pk}")
    assert "remote=1" in frame.url
    expect(frame.locator("img")).to_have_js_property("naturalWidth", 1)

    # Quoted history folded behind a toggle (in the plain-text view of the mail).
    quote = item.locator("details.mail-quote")
    expect(quote).to_have_count(1)
    assert quote.get_attribute("open") is None

    # The reply box: subject prefilled, Cc/Bcc; Enter is a new line, Ctrl+Enter sends.
    box = page.locator("#reply-box")
    expect(box.locator('input[name="subject"]')).to_have_value("Re: Order 1042 has not arrived")
    expect(box.locator('input[name="cc"]')).to_be_hidden()  # behind "Cc / Bcc"
    box.get_by_text("Cc / Bcc").click()
    expect(box.locator('input[name="bcc"]')).to_be_visible()
    box.locator('input[name="cc"]').fill("tom@example.org")
    box.locator('input[name="cc"]').press("Enter")  # does not send either
    textarea = box.locator("textarea[name=body]")
    textarea.click()
    textarea.type("It left our warehouse today.")
    textarea.press("Enter")
    textarea.type("Kind regards")
    expect(textarea).to_have_value("It left our warehouse today.\nKind regards")
    page.wait_for_timeout(500)
    assert not Message.objects.filter(direction=Message.Direction.OUTBOUND).exists()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    _screenshot(page, "email-reply-390")

    textarea.press("Control+Enter")
    sent = _wait_for(lambda: Message.objects.filter(direction=Message.Direction.OUTBOUND).first())
    assert sent.body == "It left our warehouse today.\nKind regards"
    assert sent.metadata["subject"] == "Re: Order 1042 has not arrived"
    assert sent.metadata["cc"] == ["tom@example.org"]
    reply = page.locator(f'#messages li[data-message-id="{sent.pk}"]')
    expect(reply.locator('[data-role="cc"]')).to_have_text("tom@example.org")
    expect(box.locator("textarea[name=body]")).to_have_value("")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    _screenshot(page, "email-replied-390")
