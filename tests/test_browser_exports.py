"""The delete page's "Export first" in a real browser (a phone at 390×844 and a desktop)
against a live daphne + Redis: the admin starts the export, sees its progress, and the
download link appears without a reload when the build (run here, as a worker would) ends;
the downloaded archive is the one built."""

import os
import zipfile

import pytest
from django.test import override_settings
from playwright.sync_api import expect

from accounts.models import Role
from exports.models import ExportJob
from exports.tasks import build_export

from .factories import ConversationFactory, MessageFactory, UserFactory, WhatsAppNumberFactory
from .live import *  # noqa: F403  (fixtures: daphne_server, browser; helpers log_in, wait_live)
from .test_browser_phone import AXE, SERIOUS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1360, "height": 860}
RELOAD_MARK = "window.__switchboardNoReload"


def _axe(page, server) -> list[str]:
    """Serious or critical accessibility violations of what the page shows now."""
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.add_script_tag(url=server.url + AXE)
    return page.evaluate(SERIOUS)


def _screenshot(page, name: str) -> None:
    folder = os.environ.get("SCREENSHOTS")
    if folder:
        page.screenshot(path=os.path.join(folder, f"{name}.png"), full_page=True)


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_the_delete_page_exports_first_and_offers_the_download_live(
    daphne_server,  # noqa: F811
    browser,  # noqa: F811
    viewport,
):
    number = WhatsAppNumberFactory(display_name="Sales line")
    admin = UserFactory(company=number.company, role=Role.ADMIN, username="alice")
    for n in range(3):
        conversation = ConversationFactory(company=number.company, source=number)
        MessageFactory(conversation=conversation, body=f"Добрый день, заказ {n}")
    page = log_in(browser, daphne_server, admin, viewport=viewport)  # noqa: F405
    page.goto(f"{daphne_server.url}/settings/whatsapp/{number.pk}/delete/")
    offer = page.locator("#export-offer")
    expect(offer).to_contain_text("Export first")
    expect(offer).to_contain_text("3 conversations")
    # Offered before the delete button.
    assert page.evaluate(
        """() => {
          const offer = document.getElementById("export-offer");
          const danger = [...document.querySelectorAll("button")].find(
            (b) => b.textContent.includes("forever"));
          return !!(offer.compareDocumentPosition(danger) & Node.DOCUMENT_POSITION_FOLLOWING);
        }"""
    )

    offer.get_by_role("button", name="Export first").click()
    expect(offer.locator("[data-export-status]")).to_contain_text("Exporting: 0 of 3")
    expect(offer.locator("progress")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    assert _axe(page, daphne_server) == []
    _screenshot(page, f"export-progress-{viewport['width']}")
    job = ExportJob.objects.get()
    assert job.state == "queued"
    wait_live(page)  # noqa: F405
    page.evaluate(f"{RELOAD_MARK} = true")

    with override_settings(EXPORT_PROGRESS_BATCH=1):
        assert build_export(job.pk) == "done"  # what the worker does, here

    download = offer.get_by_role("link", name="Download the archive")
    expect(download).to_be_visible()
    assert page.evaluate(f"{RELOAD_MARK} === true"), "the page was reloaded"
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    assert _axe(page, daphne_server) == []
    _screenshot(page, f"export-done-{viewport['width']}")
    with page.expect_download() as downloaded:
        download.click()
    assert downloaded.value.suggested_filename == job.download_name
    with zipfile.ZipFile(downloaded.value.path()) as archive:
        csv_text = archive.read("messages.csv").decode("utf-8-sig")
    assert all(f"Добрый день, заказ {n}" in csv_text for n in range(3))
