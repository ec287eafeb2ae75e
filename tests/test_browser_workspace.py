"""The agent's workspace in real browsers against a live daphne + Redis: a private note with
an @mention picked from the autocomplete, the colleague's bell rising live; "X is typing" and
"X is viewing" seen in a second browser context; the new pages at 390x844.

Chromium is Debian's (/usr/bin/chromium), driven headless by Playwright."""

import pytest
from playwright.sync_api import expect

from messaging.models import Message
from notifications.models import Notification

from .factories import CompanyFactory, ConversationFactory, UserFactory
from .live import *  # noqa: F403  (fixtures: daphne_server, browser; helpers log_in, wait_live)
from .test_browser import _team as browser_team

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}


def _team():
    """test_browser's team (Alice the admin, Bob the agent) and a conversation of theirs."""
    company, alice, bob = browser_team()
    conversation = ConversationFactory(company=company, client__name="Hamburg Hafen")
    return company, alice, bob, conversation


def test_a_note_with_a_mention_rises_the_colleagues_bell_live(daphne_server, browser):  # noqa: F405
    company, alice, bob, conversation = _team()
    UserFactory(company=CompanyFactory(), username="bobby", first_name="Bobby")  # not a colleague

    page_b = log_in(browser, daphne_server, bob)  # noqa: F405
    page_b.goto(daphne_server.url + "/inbox/")
    wait_live(page_b)  # noqa: F405
    expect(page_b.locator("#notification-bell [data-role=bell-count]")).to_be_hidden()

    page_a = log_in(browser, daphne_server, alice)  # noqa: F405
    page_a.goto(f"{daphne_server.url}/inbox/{conversation.pk}/")
    wait_live(page_a)  # noqa: F405
    page_a.click('[data-compose-mode="note"]')
    expect(page_a.locator("#reply-box")).to_be_hidden()
    note_input = page_a.locator("[data-role=note-input]")
    expect(note_input).to_be_focused()
    note_input.type("Can you call them, @bo")
    menu = page_a.locator("[data-role=mention-menu]")
    expect(menu).to_be_visible()
    expect(menu.locator("[role=option]")).to_have_count(1)  # bob, not the other company's bobby
    expect(menu).to_contain_text("Bob Agent")
    note_input.press("Enter")  # picks the highlighted colleague
    expect(note_input).to_have_value("Can you call them, @bob ")
    note_input.type("please?")
    note_input.press("Control+Enter")

    note = page_a.locator("#messages li.msg-note")
    expect(note).to_contain_text("Private note")
    expect(note).to_contain_text("Can you call them, @bob please?")
    expect(note_input).to_have_value("")
    stored = Message.objects.get(conversation=conversation, direction="note")
    assert stored.metadata["mentions"] == [bob.pk]

    # Bob's bell counts it without a reload, and the title says so.
    expect(page_b.locator("#notification-bell [data-role=bell-count]")).to_have_text("1")
    assert page_b.title().startswith("(1) ")
    page_b.click("#notification-bell summary")
    item = page_b.locator("#notification-bell [data-notification-id]")
    expect(item).to_contain_text("Alice Admin mentioned you in “Hamburg Hafen”")
    item.locator("button").click()
    page_b.wait_for_url(f"**/inbox/{conversation.pk}/")
    expect(page_b.locator("#messages li.msg-note")).to_contain_text("please?")
    expect(page_b.locator("#notification-bell [data-role=bell-count]")).to_be_hidden()
    assert Notification.objects.get(user=bob).read_at is not None


def test_the_bell_says_99_plus_live_from_a_hundred_unread_at_phone_width(daphne_server, browser):  # noqa: F405
    from notifications import services as notifications
    from notifications.models import UNREAD_COUNTED

    company, _alice, bob, conversation = _team()
    Notification.objects.bulk_create(
        Notification(company_id=company.pk, user=bob, kind="assigned", subject=f"#{n}")
        for n in range(UNREAD_COUNTED - 2)
    )
    page = log_in(browser, daphne_server, bob, viewport=PHONE)  # noqa: F405
    page.goto(daphne_server.url + "/inbox/")
    wait_live(page)  # noqa: F405
    count = page.locator("#notification-bell [data-role=bell-count]")
    expect(count).to_have_text(str(UNREAD_COUNTED - 2))
    expect(count).to_be_in_viewport()

    def assigned():
        notifications.notify_each(
            "assigned",
            [{"user_id": bob.pk, "subject": "Kiel", "conversation_id": conversation.pk}],
            company_id=company.pk,
        )

    assigned()
    expect(count).to_have_text(str(UNREAD_COUNTED - 1))
    assigned()
    expect(count).to_have_text(f"{UNREAD_COUNTED - 1}+")
    assert page.title().startswith(f"({UNREAD_COUNTED - 1}+) ")
    assigned()  # still "99+": the server counts no further
    expect(page.locator("#notification-bell")).to_have_attribute("data-unread", str(UNREAD_COUNTED))
    expect(count).to_have_text(f"{UNREAD_COUNTED - 1}+")
    page.reload()
    expect(count).to_have_text(f"{UNREAD_COUNTED - 1}+")


def test_typing_and_viewing_are_seen_in_a_second_browser(daphne_server, browser):  # noqa: F405
    company, alice, bob, conversation = _team()
    url = f"{daphne_server.url}/inbox/{conversation.pk}/"
    page_a = log_in(browser, daphne_server, alice)  # noqa: F405
    page_b = log_in(browser, daphne_server, bob)  # noqa: F405
    for page in (page_a, page_b):
        page.goto(url)
        wait_live(page)  # noqa: F405

    activity_b = page_b.locator("[data-role=conversation-activity]")
    expect(activity_b).to_contain_text("Alice Admin is viewing")
    expect(page_a.locator("[data-role=conversation-activity]")).to_contain_text(
        "Bob Agent is viewing"
    )
    page_a.locator("#reply-box textarea").type("Hello th")
    expect(activity_b).to_contain_text("Alice Admin is typing…")
    # It goes away by itself when she stops.
    expect(activity_b).not_to_contain_text("is typing", timeout=15_000)
    assert not Message.objects.filter(conversation=conversation).exists()


def test_workspace_pages_fit_a_phone(daphne_server, browser):  # noqa: F405
    company, alice, bob, conversation = _team()
    Notification.objects.create(
        company=company, user=bob, kind="assigned", subject="Hamburg Hafen", actor=alice
    )
    page = log_in(browser, daphne_server, bob, viewport=PHONE)  # noqa: F405
    for path in ("/notifications/", "/settings/notifications/", f"/inbox/{conversation.pk}/"):
        page.goto(daphne_server.url + path)
        wide = page.evaluate(
            "Array.from(document.querySelectorAll('body *')).filter(e => e.scrollWidth > e.clientWidth + 1 && e.clientWidth > 0).map(e => e.tagName + '.' + e.className + ':' + e.scrollWidth + '/' + e.clientWidth).slice(0, 15).join(' | ')"
        )
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (path, wide, width)
    page.goto(daphne_server.url + "/notifications/")
    expect(page.locator("[data-notification-id]")).to_contain_text("Alice Admin assigned you")
    page.click("#notification-bell summary")
    panel = page.locator("#notification-bell [data-role=bell-panel]")
    expect(panel.locator("[data-notification-id]")).to_be_visible()
    box = panel.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390

    page.goto(daphne_server.url + "/settings/notifications/")
    page.uncheck('input[value="new_message"]')
    page.check('input[name="sound"]')
    page.click("form.stack-form button[type=submit]")
    expect(page.locator('input[value="new_message"]')).not_to_be_checked()
    expect(page.locator("#notification-bell")).to_have_attribute("data-sound", "on")

    page.goto(f"{daphne_server.url}/inbox/{conversation.pk}/")
    page.click('[data-compose-mode="note"]')
    note_box = page.locator("#note-box").bounding_box()
    assert note_box["x"] >= 0 and note_box["x"] + note_box["width"] <= 390
