"""Deals and reports in real browsers against a live daphne + Redis: a card dragged on one
person's board moves on everyone's without a reload; phones move cards with the stage select;
the Reports page draws its charts under the strict CSP."""

import os
import time

import pytest
from playwright.sync_api import expect

from accounts.models import Role
from deals.models import Deal, StageChange

from .factories import (
    ClientFactory,
    CompanyFactory,
    ConversationFactory,
    DealFactory,
    PipelineFactory,
    UserFactory,
)
from .live import *  # noqa: F403  (fixtures: daphne_server, browser; helpers log_in, wait_live)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PHONE = {"width": 390, "height": 844}
RELOAD_MARK = "window.__switchboardNoReload"


def _screenshot(page, name: str) -> None:
    folder = os.environ.get("SCREENSHOTS")
    if folder:
        page.screenshot(path=os.path.join(folder, f"{name}.png"), full_page=True)


def _wait_for(check, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    pytest.fail("timed out waiting for the database")


def _team():
    company = CompanyFactory(name="Acme Furniture")
    alice = UserFactory(company=company, username="alice", first_name="Alice", role=Role.ADMIN)
    bob = UserFactory(company=company, username="bob", first_name="Bob")
    return company, alice, bob


def _fits(page, width=390):
    assert page.evaluate("document.documentElement.scrollWidth") <= width


def test_a_dragged_card_moves_on_every_board_live(daphne_server, browser):  # noqa: F405
    company, alice, bob = _team()
    pipeline = PipelineFactory(company=company, name="Retail", stages=("New", "Offer", "Signed"))
    new, offer, _signed = pipeline.stages.order_by("position")
    sofa = DealFactory(company=company, pipeline=pipeline, title="Corner sofa", amount=1900)
    url = f"{daphne_server.url}/deals/?pipeline={pipeline.pk}"

    page_a = log_in(browser, daphne_server, alice)  # noqa: F405
    page_b = log_in(browser, daphne_server, bob)  # noqa: F405
    for page in (page_a, page_b):
        page.goto(url)
        wait_live(page)  # noqa: F405
        page.evaluate(f"{RELOAD_MARK} = true")
    card = f'.deal-card[data-deal="{sofa.pk}"]'
    for page in (page_a, page_b):
        expect(page.locator(f'[data-drop-stage="{new.pk}"] {card}')).to_contain_text("Corner sofa")

    page_a.drag_and_drop(card, f'.board-cards[data-drop-stage="{offer.pk}"]')

    expect(page_b.locator(f'[data-drop-stage="{offer.pk}"] {card}')).to_contain_text("Corner sofa")
    expect(page_b.locator(f'[data-drop-stage="{new.pk}"] {card}')).to_have_count(0)
    expect(
        page_b.locator(f'.board-column[data-stage="{offer.pk}"] [data-role="count"]')
    ).to_have_text("1")
    assert page_b.evaluate(f"{RELOAD_MARK} === true"), "Bob's board was reloaded"
    _wait_for(lambda: Deal.objects.get(pk=sofa.pk).stage_id == offer.pk)
    step = StageChange.objects.filter(deal=sofa).latest("id")
    assert (step.from_name, step.to_name, step.actor) == ("New", "Offer", alice)

    # A deal another person creates appears too.
    lamp = DealFactory.build(company=company, pipeline=pipeline, title="Floor lamp")
    from deals import services

    created = services.create_deal(
        bob, title="Floor lamp", client=ClientFactory(company=company), pipeline=pipeline
    )
    expect(
        page_a.locator(f'[data-drop-stage="{new.pk}"] .deal-card[data-deal="{created.pk}"]')
    ).to_contain_text(lamp.title)
    _screenshot(page_b, "deals-board")


def test_on_a_phone_cards_move_with_the_stage_select(daphne_server, browser):  # noqa: F405
    company, alice, bob = _team()
    pipeline = PipelineFactory(company=company, name="Retail", stages=("New", "Offer"))
    new, offer = pipeline.stages.order_by("position")
    deal = DealFactory(company=company, pipeline=pipeline, title="Oak table", owner=bob)
    page_b = log_in(browser, daphne_server, bob)  # noqa: F405
    page = log_in(browser, daphne_server, alice, viewport=PHONE)  # noqa: F405
    page_b.goto(f"{daphne_server.url}/deals/?pipeline={pipeline.pk}")
    wait_live(page_b)  # noqa: F405
    page.goto(f"{daphne_server.url}/deals/?pipeline={pipeline.pk}")
    wait_live(page)  # noqa: F405
    _fits(page)
    page.select_option(
        f'.deal-card[data-deal="{deal.pk}"] select[data-role="stage-select"]', str(offer.pk)
    )
    expect(
        page.locator(f'[data-drop-stage="{offer.pk}"] .deal-card[data-deal="{deal.pk}"]')
    ).to_be_visible()
    expect(
        page_b.locator(f'[data-drop-stage="{offer.pk}"] .deal-card[data-deal="{deal.pk}"]')
    ).to_be_visible()
    _wait_for(lambda: Deal.objects.get(pk=deal.pk).stage_id == offer.pk)
    _screenshot(page, "deals-board-390")

    # The deal's page, the list and pipelines fit the phone; won from the deal page.
    page.goto(f"{daphne_server.url}/deals/{deal.pk}/")
    _fits(page)
    page.click('[data-action="won"]')
    expect(page.locator("#deal-status")).to_have_text("Won")
    for path in (
        "/deals/list/",
        "/deals/pipelines/",
        "/deals/automation/",
        f"/deals/pipelines/{pipeline.pk}/delete/",
    ):
        page.goto(daphne_server.url + path)
        _fits(page)


def test_one_click_deal_from_a_conversation_on_a_phone(daphne_server, browser):  # noqa: F405
    company, alice, _bob = _team()
    conversation = ConversationFactory(
        company=company, client=ClientFactory(company=company, name="Maria Lopez")
    )
    page = log_in(browser, daphne_server, alice, viewport=PHONE)  # noqa: F405
    page.goto(f"{daphne_server.url}/inbox/{conversation.pk}/")
    # The client's deals are in the contact panel: on a phone it opens from "Contact".
    page.click('.conversation-topbar [data-action="toggle-contact"]')
    page.click('#conversation-deals [data-action="create-deal"]')
    _wait_for(lambda: Deal.objects.filter(conversation=conversation).exists())
    deal = Deal.objects.get(conversation=conversation)
    expect(page.locator(f'#conversation-deals [data-deal="{deal.pk}"]')).to_contain_text(
        "Deal with Maria Lopez"
    )
    _fits(page)
    _screenshot(page, "conversation-deals-390")


def test_reports_draw_their_charts_under_the_policy_on_a_phone(daphne_server, browser):  # noqa: F405
    company, alice, _bob = _team()
    DealFactory(company=company, title="Anything")
    conversation = ConversationFactory(company=company, assignee=alice)
    from .factories import MessageFactory

    MessageFactory(conversation=conversation)
    page = log_in(browser, daphne_server, alice, viewport=PHONE)  # noqa: F405
    violations = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    page.goto(f"{daphne_server.url}/reports/")
    for name in ("by-channel", "by-agent", "messages-per-day", "deal-funnel", "won-amounts"):
        expect(page.locator(f'canvas[data-chart="{name}"]')).to_have_attribute("data-drawn", "1")
    assert page.evaluate("typeof window.Chart") == "function"
    assert violations == []
    _fits(page)
    _screenshot(page, "reports-390")
