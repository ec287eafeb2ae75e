"""The conversation's contact panel and the inbox's label menus and "select all" in a real
browser (Debian's chromium via Playwright, live daphne + Redis), at desktop size and on a
390x844 phone: the panel shows the client's details, labels, other conversations on every
channel and open deals (with "New deal"); a label created, renamed or deleted elsewhere shows
in an open inbox's filter and bulk menus without a reload; "select all" acts on every
conversation of the filtered list, not only the loaded page."""

import pytest
from playwright.sync_api import expect

from deals.models import Deal
from messaging.models import Conversation
from triage import services as triage_services
from triage.models import ClientLabel, ConversationLabel, Label

from .factories import (
    ClientFactory,
    CompanyFactory,
    ConversationFactory,
    DealFactory,
    TelegramAccountFactory,
)
from .live import *  # noqa: F403  (fixtures: daphne_server, browser; helpers log_in, wait_live)
from .processes import wait_for
from .test_browser_triage import PHONE, SIZES, _team  # the same team and sizes

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _fits(page, width):
    assert page.evaluate("document.documentElement.scrollWidth") <= width


@SIZES
def test_the_contact_panel_shows_details_labels_other_conversations_and_open_deals(
    daphne_server, browser, viewport
):
    company, _admin, agent = _team()
    client = ClientFactory(
        company=company, name="Maria Ortiz", email="maria@example.com", phone="+4915112345678"
    )
    conversation = ConversationFactory(company=company, client=client, last_message_preview="Hi")
    ConversationFactory(
        company=company,
        client=client,
        source=TelegramAccountFactory(company=company),
        last_message_preview="On Telegram too",
    )
    vip = Label.objects.create(company=company, name="VIP", color="green")
    urgent = Label.objects.create(company=company, name="Urgent", color="red")
    ClientLabel.objects.create(client=client, label=vip)
    ConversationLabel.objects.create(conversation=conversation, label=urgent)
    sofa = DealFactory(company=company, client=client, title="Corner sofa", amount=1900)
    DealFactory(company=company, client=client, title="Old chair", status="lost")

    page = log_in(browser, daphne_server, agent, viewport=viewport)  # noqa: F405
    page.goto(f"{daphne_server.url}/inbox/{conversation.pk}/")
    panel = page.locator("#contact-panel")
    if viewport is PHONE:
        expect(panel).to_be_hidden()
        page.click('.conversation-topbar [data-action="toggle-contact"]')
    expect(panel).to_be_visible()
    expect(panel.locator(".contact-details")).to_contain_text("Maria Ortiz")
    expect(panel.locator(".contact-details")).to_contain_text("maria@example.com")
    expect(panel.locator(".contact-details")).to_contain_text("+4915112345678")
    expect(panel.locator('[data-role="client-labels"] .label-chips')).to_contain_text("VIP")
    expect(panel.locator('[data-role="conversation-labels"] .label-chips')).to_contain_text(
        "Urgent"
    )
    expect(panel.locator('[data-role="other-conversations"]')).to_contain_text("On Telegram too")
    deals = panel.locator('[data-role="client-deals"]')
    expect(deals.locator(f'[data-deal="{sofa.pk}"]')).to_contain_text("Corner sofa")
    expect(deals).not_to_contain_text("Old chair")
    _fits(page, viewport["width"])

    # "New deal" from the panel: the new deal shows there at once.
    deals.locator('[data-action="create-deal"]').click()
    wait_for(lambda: Deal.objects.filter(conversation=conversation).exists())
    deal = Deal.objects.get(conversation=conversation)
    expect(deals.locator(f'[data-deal="{deal.pk}"]')).to_contain_text("Deal with Maria Ortiz")
    expect(panel).to_be_visible()
    _fits(page, viewport["width"])


@SIZES
def test_the_label_menus_follow_label_changes_without_a_reload(daphne_server, browser, viewport):
    company, admin, _agent = _team()
    conversation = ConversationFactory(company=company, last_message_preview="Hi")
    ConversationFactory(company=company, last_message_preview="Other")
    page = log_in(browser, daphne_server, admin, viewport=viewport)  # noqa: F405
    page.goto(daphne_server.url + "/inbox/")
    wait_live(page)  # noqa: F405
    page.evaluate("window.__noReload = true")
    filter_menu = page.locator('#inbox-filters select[name="label"]')
    expect(filter_menu).to_have_count(0)  # the company has no label yet

    # Another admin creates one: it is in the filter and the bulk bar's menu, live.
    vip = triage_services.create_label(admin, "VIP", "green")
    expect(filter_menu.locator("option", has_text="VIP")).to_have_count(1)
    bulk_menu = page.locator('#bulk-form select[name="label"]')
    expect(bulk_menu.locator("option", has_text="VIP")).to_have_count(1)
    ConversationLabel.objects.create(conversation=conversation, label=vip)
    filter_menu.select_option(label="VIP")
    expect(page.locator("#conversation-list li.conv-row")).to_have_count(1)

    # Renamed: the chosen option keeps being chosen, under its new name.
    triage_services.update_label(admin, vip, name="Gold")
    expect(filter_menu.locator("option:checked")).to_have_text("Gold")
    triage_services.create_label(admin, "Later", "blue")
    expect(filter_menu.locator("option")).to_have_count(3)  # "Any label", Gold, Later
    # Deleted: gone from both menus.
    triage_services.delete_label(admin, Label.objects.get(name="Later"))
    expect(filter_menu.locator("option", has_text="Later")).to_have_count(0)
    expect(bulk_menu.locator("option", has_text="Later")).to_have_count(0)
    assert page.evaluate("window.__noReload") is True  # never reloaded
    _fits(page, viewport["width"])


@SIZES
def test_select_all_acts_on_every_conversation_of_the_filtered_list(
    daphne_server, browser, viewport
):
    company, admin, agent = _team()
    rows = ConversationFactory.create_batch(53, company=company)  # a page holds 50
    telegram = ConversationFactory(company=company, source=TelegramAccountFactory(company=company))
    other = ConversationFactory(company=CompanyFactory(name="Globex"))
    page = log_in(browser, daphne_server, admin, viewport=viewport)  # noqa: F405
    page.goto(daphne_server.url + "/inbox/?platform=whatsapp")
    wait_live(page)  # noqa: F405
    expect(page.locator("#conversation-list li.conv-row")).to_have_count(50)
    bar = page.locator("#bulk-form")
    page.check(f'li[data-conversation-id="{rows[-1].pk}"] .conv-select')
    expect(bar.locator('[data-role="bulk-count"]')).to_have_text("1 selected")
    select_all = bar.locator('[data-action="bulk-select-all"]')
    expect(select_all).to_have_text("Select all 53")
    select_all.click()
    expect(bar.locator('[data-role="bulk-count"]')).to_have_text(
        "All 53 conversations of this list selected"
    )
    expect(page.locator("#conversation-list .conv-select:checked")).to_have_count(50)
    bar.locator('select[name="assignee"]').select_option(label="Bob")
    # 53 assignments, each its own transaction with its events and Bob's notification: on a
    # loaded machine that is more than the default 15 s wait for the page that follows.
    with page.expect_navigation(timeout=120_000):
        bar.locator('[data-action="bulk-assign"]').click(no_wait_after=True)
    expect(page.locator(".flash")).to_contain_text("Done for 53 conversations")
    assert set(
        Conversation.objects.filter(pk__in=[r.pk for r in rows]).values_list(
            "assignee_id", flat=True
        )
    ) == {agent.pk}
    telegram.refresh_from_db()
    other.refresh_from_db()
    assert telegram.assignee_id is None and other.assignee_id is None

    # Select all, then narrow the filters: the selection of the old list is dropped.
    wait_live(page)  # noqa: F405
    page.check(f'li[data-conversation-id="{rows[-1].pk}"] .conv-select')
    bar.locator('[data-action="bulk-select-all"]').click()
    page.select_option('#inbox-filters select[name="platform"]', "telegram")
    expect(bar).to_be_hidden()
    expect(page.locator("#conversation-list li.conv-row")).to_have_count(1)
    page.check(f'li[data-conversation-id="{telegram.pk}"] .conv-select')
    expect(bar.locator('[data-action="bulk-select-all"]')).to_be_hidden()  # one of one
    bar.locator('[data-action="bulk-close"]').click()
    expect(page.locator(".flash")).to_contain_text("Done for 1 conversations")
    telegram.refresh_from_db()
    assert telegram.status == "closed"
    assert Conversation.objects.filter(pk__in=[r.pk for r in rows], status="open").count() == 53
    _fits(page, viewport["width"])
