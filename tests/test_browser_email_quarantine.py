"""Settings → Email at phone width (390×844) in a real browser against a live daphne: the
mails that could not be imported, with Download raw and Retry."""

import pytest
from playwright.sync_api import expect

from accounts.models import Role
from channels_integrations.models import EmailQuarantine
from messaging.models import Message

from .factories import CompanyFactory, EmailAccountFactory, UserFactory
from .live import *  # noqa: F403  (fixtures: daphne_server, browser; helper log_in)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RAW = (
    b"From: Maria Lopez <maria@example.org>\r\nTo: help@acme.test\r\n"
    b"Subject: A very long subject line that goes on and on\r\n"
    b"Message-ID: <a-rather-long-message-id.1234567890.abcdefghij@mail.example.org>\r\n\r\n"
    b"Where is my parcel?\r\n"
)


def test_the_quarantine_list_works_at_phone_width(daphne_server, browser):  # noqa: F405
    company = CompanyFactory(name="Acme Logistics")
    alice = UserFactory(company=company, username="alice", role=Role.ADMIN)
    account = EmailAccountFactory(company=company, address="help@acme.test", status="warning")
    item = EmailQuarantine.objects.create(
        account=account,
        uidvalidity=1,
        uid=4711,
        message_id="a-rather-long-message-id.1234567890.abcdefghij@mail.example.org",
        size=len(RAW),
        reason='IntegrityError: new row for relation "messaging_message" violates check '
        'constraint "some_constraint_with_a_long_name"',
        raw=RAW,
    )
    page = log_in(browser, daphne_server, alice, viewport={"width": 390, "height": 844})  # noqa: F405
    page.goto(f"{daphne_server.url}/settings/email/")
    row = page.locator(f"#quarantine-item-{item.pk}")
    expect(row).to_contain_text("UID 4711")
    expect(page.locator(f"#email-{account.pk}")).to_contain_text("1 mail could not be imported")
    retry = row.get_by_role("button", name="Retry")
    download = row.get_by_role("link", name="Download raw")
    for control in (retry, download):
        expect(control).to_be_visible()
        box = control.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    assert page.evaluate("document.documentElement.scrollWidth") <= 390

    with page.expect_download() as downloaded:
        download.click()
    assert downloaded.value.suggested_filename == "uid-4711.eml"
    with open(downloaded.value.path(), "rb") as file:
        assert file.read() == RAW

    retry.click()
    expect(page.locator("body")).to_contain_text("Mail UID 4711 imported.")
    expect(page.locator(f"#quarantine-item-{item.pk}")).to_have_count(0)
    assert (
        Message.objects.get(
            external_id="a-rather-long-message-id.1234567890.abcdefghij@mail.example.org"
        ).body
        == "Where is my parcel?"
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
