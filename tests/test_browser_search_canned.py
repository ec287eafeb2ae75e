"""At phone width (390×844), in a real browser against a live daphne: the inbox search finds a
word in an old message, shows it highlighted and opens the conversation at that message; an
agent types `/gre` in the reply box, picks the canned reply with the keyboard, and the text
arrives with the client's name filled in; the canned replies Settings page."""

import os
import re

import pytest
from playwright.sync_api import expect

from accounts.models import Role
from canned.models import CannedReply

from .factories import (
    ClientFactory,
    CompanyFactory,
    ConversationFactory,
    MessageFactory,
    UserFactory,
)
from .live import *  # noqa: F403  (fixtures: daphne_server, browser; helpers log_in, wait_live)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PHONE = {"width": 390, "height": 844}


def _no_sideways(page, name=""):
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    folder = os.environ.get("SCREENSHOTS")  # keep a picture: SCREENSHOTS=<dir>
    if folder and name:
        page.screenshot(path=os.path.join(folder, f"{name}.png"))


def _setup():
    company = CompanyFactory(name="Acme Logistics")
    agent = UserFactory(company=company, username="bob", first_name="Bob", role=Role.AGENT)
    conversation = ConversationFactory(
        company=company,
        client=ClientFactory(company=company, name="Olena Kovalenko", phone="+380671234567"),
    )
    return company, agent, conversation


def test_search_highlights_the_word_and_opens_the_conversation_at_it(daphne_server, browser):
    company, agent, conversation = _setup()
    hit = MessageFactory(conversation=conversation, body="Is my parcel still in Hamburg?")
    for n in range(60):
        MessageFactory(conversation=conversation, body=f"Later message number {n}")
    other = ConversationFactory(company=company)
    MessageFactory(conversation=other, body="Nothing about that city")
    CompanyFactory(name="Globex")  # another company's rows never show (API tests cover it)

    page = log_in(browser, daphne_server, agent, viewport=PHONE)  # noqa: F405
    page.goto(f"{daphne_server.url}/inbox/")
    wait_live(page)  # noqa: F405
    page.fill("input[name=q]", "hamburg")
    rows = page.locator("#conversation-list .conv-row")
    expect(rows).to_have_count(1)
    expect(rows.first.locator('[data-role="search-hit"] mark')).to_have_text("Hamburg")
    _no_sideways(page, "search-results")

    rows.first.locator("a.conv-link").click()
    target = page.locator(f"#message-{hit.pk}")
    expect(target).to_have_class(re.compile(r"\bis-search-hit\b"))
    expect(target).to_be_in_viewport()
    _no_sideways(page, "search-opened")


def test_slash_gre_inserts_the_greeting_with_the_clients_name(daphne_server, browser):
    company, agent, conversation = _setup()
    CannedReply.objects.create(
        company=company,
        title="Greeting",
        shortcut="greeting",
        body="Hello {{client.first_name}}, this is {{agent.name}} from {{company.name}}.",
    )
    CannedReply.objects.create(company=company, title="Goodbye", shortcut="bye", body="Bye!")
    CannedReply.objects.create(
        company=company, owner=agent, title="Green light", shortcut="green", body="Go ahead."
    )

    page = log_in(browser, daphne_server, agent, viewport=PHONE)  # noqa: F405
    page.goto(f"{daphne_server.url}/inbox/{conversation.pk}/")
    wait_live(page)  # noqa: F405
    box = page.locator("#reply-box textarea[name=body]")
    box.click()
    box.press_sequentially("/gre")
    options = page.locator("#canned-popup [role=option]")
    expect(options).to_have_count(2)  # greeting and (personal) green, not bye
    expect(options.first).to_contain_text("/green")
    _no_sideways(page, "canned-popup")
    box.press("ArrowDown")
    expect(options.nth(1)).to_have_attribute("aria-selected", "true")
    box.press("Enter")  # inserts; does not send

    expect(box).to_have_value("Hello Olena, this is Bob from Acme Logistics.")
    expect(page.locator("#canned-popup")).to_have_count(0)
    assert not conversation.messages.exists()


def test_the_canned_replies_settings_page_on_a_phone(daphne_server, browser):
    company, agent, _conversation = _setup()
    page = log_in(browser, daphne_server, agent, viewport=PHONE)  # noqa: F405
    page.goto(f"{daphne_server.url}/settings/canned-replies/")
    page.get_by_role("link", name="New reply").first.click()
    page.fill("input[name=title]", "Thanks")
    page.fill("input[name=shortcut]", "thanks")
    page.fill("textarea[name=body]", "Thank you, {{client.nickname}}!")
    page.get_by_role("button", name="Add reply").click()
    expect(page.locator(".alert-error, .errorlist").first).to_contain_text("{{client.nickname}}")
    _no_sideways(page, "canned-form-error")
    page.fill("textarea[name=body]", "Thank you, {{client.first_name}}!")
    page.get_by_role("button", name="Add reply").click()
    expect(page.locator("#personal-replies")).to_contain_text("/thanks")
    _no_sideways(page, "canned-list")
