"""The agent's triage tools in a real browser (Debian's chromium via Playwright, live daphne +
Redis), at desktop size and on a 390x844 phone: labels from Settings to the conversation's
side panel (and live in a colleague's inbox), saved views with live counts, the bulk bar, and
the keyboard shortcuts."""

import pytest
from playwright.sync_api import expect

from accounts.models import Role
from messaging import services
from messaging.models import Conversation
from triage.models import ConversationLabel, SavedView

from .factories import ClientFactory, CompanyFactory, ConversationFactory, UserFactory
from .live import *  # noqa: F403  (fixtures: daphne_server, browser; helpers log_in, wait_live)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DESKTOP = {"width": 1360, "height": 860}
PHONE = {"width": 390, "height": 844}
SIZES = pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])


def _team():
    company = CompanyFactory(name="Acme")
    admin = UserFactory(company=company, role=Role.ADMIN, username="ada", first_name="Ada")
    agent = UserFactory(company=company, username="bob", first_name="Bob")
    return company, admin, agent


@SIZES
def test_labels_from_settings_to_the_side_panel_and_live_in_the_inbox(
    daphne_server, browser, viewport
):
    company, admin, agent = _team()
    client = ClientFactory(company=company, name="Maria Ortiz")
    conversation = ConversationFactory(company=company, client=client, last_message_preview="Hi")
    ConversationFactory(company=company, client=client, last_message_preview="Other thread")

    # A colleague watches the inbox (desktop).
    watcher = log_in(browser, daphne_server, agent)  # noqa: F405
    watcher.goto(daphne_server.url + "/inbox/")
    wait_live(watcher)  # noqa: F405

    page = log_in(browser, daphne_server, admin, viewport=viewport)  # noqa: F405
    page.goto(daphne_server.url + "/settings/labels/")
    page.fill("#label-name", "VIP")
    page.check('input[name="color"][value="green"]')
    page.click('[data-action="create-label"]')
    expect(page.locator("#label-table")).to_contain_text("VIP")

    page.goto(daphne_server.url + f"/inbox/{conversation.pk}/")
    panel = page.locator("#contact-panel")
    if viewport is PHONE:
        expect(panel).to_be_hidden()
        page.click('.conversation-topbar [data-action="toggle-contact"]')
    expect(panel).to_be_visible()
    expect(panel).to_contain_text("Maria Ortiz")
    expect(panel.locator('[data-role="other-conversations"]')).to_contain_text("Other thread")
    section = panel.locator('[data-role="conversation-labels"]')
    section.locator("summary").click()
    section.locator('input[name="labels"]').first.check()
    section.locator('[data-action="save-conversation-labels"]').click()
    expect(
        page.locator('#contact-panel [data-role="conversation-labels"] .label-chips')
    ).to_contain_text("VIP")
    assert ConversationLabel.objects.filter(conversation=conversation).count() == 1

    # The colleague's list shows the chip without a reload; the label filter finds it.
    row = watcher.locator(f'li[data-conversation-id="{conversation.pk}"]')
    expect(row.locator(".label-chip")).to_have_text("VIP")
    # The label created after the page was drawn is in its filter, live (no reload).
    watcher.select_option('#inbox-filters select[name="label"]', label="VIP")
    expect(watcher.locator("#conversation-list li.conv-row")).to_have_count(1)
    # No inline style anywhere (colours are classes).
    assert page.locator("[style]").count() == 0


@SIZES
def test_saved_views_bulk_bar_and_keyboard(daphne_server, browser, viewport):
    company, admin, agent = _team()
    rows = [
        ConversationFactory(company=company, last_message_preview=f"Thread {n}") for n in range(3)
    ]
    page = log_in(browser, daphne_server, admin, viewport=viewport)  # noqa: F405
    page.goto(daphne_server.url + "/inbox/")
    wait_live(page)  # noqa: F405
    expect(page.locator('select[name="status"] option:checked')).to_have_text("Open")
    expect(page.locator("#conversation-list li.conv-row")).to_have_count(3)

    # Save "Closed" as a view: it shows in the sidebar with its count.
    page.select_option('select[name="status"]', "closed")
    expect(page.locator("#conversation-list li.conv-row")).to_have_count(0)
    page.fill('#save-view-form input[name="name"]', "Closed ones")
    page.click('#save-view-form [data-action="save-view"]')
    view = page.locator("#saved-views li", has_text="Closed ones")
    expect(view.locator('[data-role="view-count"]')).to_have_text("0")
    assert SavedView.objects.get().filters == {"status": "closed"}

    # Back to open ones; bulk-close two of them from the bar.
    page.goto(daphne_server.url + "/inbox/")
    bar = page.locator("#bulk-form")
    expect(bar).to_be_hidden()
    page.check(f'li[data-conversation-id="{rows[0].pk}"] .conv-select')
    page.check(f'li[data-conversation-id="{rows[1].pk}"] .conv-select')
    expect(bar).to_be_visible()
    expect(bar.locator('[data-role="bulk-count"]')).to_have_text("2 selected")
    bar.locator('[data-action="bulk-close"]').click()
    expect(page.locator(".flash")).to_contain_text("Done for 2 conversations")
    expect(page.locator("#conversation-list li.conv-row")).to_have_count(1)
    assert Conversation.objects.filter(status="closed").count() == 2
    wait_live(page)  # noqa: F405
    count = page.locator("#saved-views li", has_text="Closed ones").locator(
        '[data-role="view-count"]'
    )
    expect(count).to_have_text("2")

    # The count follows a change made elsewhere, live.
    services.set_conversation_status(agent, rows[2], "closed")
    expect(count).to_have_text("3")
    services.set_conversation_status(agent, rows[2], "open")
    expect(count).to_have_text("2")
    expect(page.locator("#conversation-list li.conv-row")).to_have_count(1)

    # Keyboard: j/k move, o opens, r focuses the reply box, ? shows the help.
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    page.keyboard.press("j")
    expect(page.locator("#conversation-list li.is-kbd")).to_have_count(1)
    page.keyboard.press("o")
    page.wait_for_url(f"**/inbox/{rows[2].pk}/**")
    page.wait_for_selector("#reply-box textarea")
    page.keyboard.press("r")
    expect(page.locator("#reply-box textarea")).to_be_focused()
    # Typing in the reply box types: no shortcut fires.
    page.keyboard.type("jk?")
    expect(page.locator("#reply-box textarea")).to_have_value("jk?")
    expect(page.locator("#shortcuts-help")).not_to_be_visible()
    page.locator("#reply-box textarea").fill("")
    page.locator("#reply-box textarea").blur()
    page.keyboard.press("Shift+Slash")  # "?"
    expect(page.locator("#shortcuts-help")).to_be_visible()
    expect(page.locator("#shortcuts-help")).to_contain_text("j")
    page.keyboard.press("Escape")
    expect(page.locator("#shortcuts-help")).not_to_be_visible()
    # "/" puts a slash in the reply box (the canned replies' trigger).
    page.keyboard.press("/")
    expect(page.locator("#reply-box textarea")).to_be_focused()
    expect(page.locator("#reply-box textarea")).to_have_value("/")
    # "n" switches the compose box to a private note and puts the cursor there.
    page.locator("#reply-box textarea").fill("")
    page.locator("#reply-box textarea").blur()
    page.keyboard.press("n")
    expect(page.locator("#compose")).to_have_attribute("data-mode", "note")
    expect(page.locator('[data-role="note-input"]')).to_be_focused()
