"""Settings → Instagram & Messenger at phone width (390×844) in a real browser against a live
daphne: reached from the settings page; an admin adds a Page, copies its webhook URL and tests
the connection against the Graph fake; nothing spills sideways."""

import os

import pytest
from playwright.sync_api import expect

from accounts.models import Role
from channels_integrations.meta.models import MessengerPage

from .factories import CompanyFactory, InstagramAccountFactory, UserFactory
from .live import *  # noqa: F403  (fixtures: daphne_server, browser; helper log_in)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _fits(page, locator) -> None:
    box = locator.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, box
    wide = page.evaluate(
        """[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > 391)
        .map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))
        .slice(0, 8)"""
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, wide


@pytest.fixture
def graph_for_daphne(monkeypatch, far_end):
    """The live daphne (another process) talks to the same Graph fake: its URL by environment,
    set before the server starts."""
    monkeypatch.setenv("WHATSAPP_GRAPH_URL", far_end.url)
    return far_end


def test_the_meta_settings_page_works_at_phone_width(graph_for_daphne, daphne_server, browser):  # noqa: F405
    far_end = graph_for_daphne
    company = CompanyFactory(name="Acme Logistics")
    alice = UserFactory(company=company, username="alice", role=Role.ADMIN)
    InstagramAccountFactory(
        company=company,
        name="Acme on Instagram with a rather long name",
        status="error",
        last_error="The page access token is invalid or expired (Graph error 190).",
    )
    page = log_in(browser, daphne_server, alice, viewport={"width": 390, "height": 844})  # noqa: F405
    page.goto(f"{daphne_server.url}/settings/")
    page.get_by_role("link", name="Instagram & Messenger").click()
    expect(page.locator("h1")).to_have_text("Instagram & Messenger")
    expect(page.locator("#instagram")).to_contain_text("Graph error 190")
    _fits(page, page.locator("#instagram .card").first)

    page.get_by_role("link", name="Add Page").click()
    page.get_by_label("Name").fill("Acme Shop")
    page.get_by_label("Facebook Page id").fill("1000001")
    page.get_by_label("Page access token").fill("EAA-token")
    page.get_by_label("App secret").fill("app-secret")
    page.get_by_label("Webhook verify token").fill("verify")
    _fits(page, page.get_by_role("button", name="Add"))
    page.get_by_role("button", name="Add").click()

    saved = MessengerPage.objects.get(company=company)
    card = page.locator(f"#page-{saved.pk}")
    expect(card).to_contain_text("Acme Shop")
    expect(page.locator(f"#webhook-page-{saved.pk}")).to_have_value(
        f"{daphne_server.url}/webhooks/meta/{saved.uuid}/"
    )
    _fits(page, card)
    far_end.meta_pages["EAA-token"] = ("1000001", "Acme Shop")
    far_end.meta_app_secrets["EAA-token"] = "app-secret"
    card.get_by_role("button", name="Test connection").click()
    expect(page.locator(".messages, [role=status], .alert").first).to_contain_text(
        "Connected: Page Acme Shop."
    )
    expect(page.locator(f"#page-{saved.pk}")).to_contain_text("Connected")
    _fits(page, page.locator(f"#page-{saved.pk}"))
    if folder := os.environ.get("SCREENSHOTS"):
        page.screenshot(path=os.path.join(folder, "meta-settings-390.png"), full_page=True)
