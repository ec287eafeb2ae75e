"""Phones and accessibility, in a real browser: every page of the walk fits 390×844 without
sideways scrolling and has no serious or critical axe-core violation; the main flow (log in,
inbox, open a conversation, reply, back) works on a phone in Russian and Ukrainian; the app
installs (manifest, icons, a service worker serving the offline page)."""

import json

import pytest
from django.templatetags.static import static
from django.urls import reverse

from messaging.models import Message

from . import page_walk
from .factories import ConversationFactory, MessageFactory, UserFactory
from .live import *  # noqa: F403  (fixtures: daphne_server, browser; helpers log_in)

page_urls = page_walk.page_urls  # the fixture

PHONE = {"width": 390, "height": 844}
AXE = static("vendor/axe-core/axe.min.js")
# The deepest elements reaching past the phone's right edge (to name what to fix).
WIDEST = """() => Array.from(document.querySelectorAll("body *"))
  .filter((e) => e.getBoundingClientRect().right > 391 && !Array.from(e.children).some(
    (c) => c.getBoundingClientRect().right > 391))
  .slice(0, 4).map((e) => e.tagName.toLowerCase() + (e.className ? "." + String(e.className).split(" ").join(".") : ""))
  .join(", ")"""
SERIOUS = """async () => {
  const result = await axe.run(document, {
    resultTypes: ["violations"],
    runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]},
  });
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(" | ")}`);
}"""


def _check(page, server, name, url, wide, violations, *, scripts=True):
    response = page.goto(server.url + url)
    if response.status != 200:
        violations.append(f"{name} ({url}): answered {response.status}")
        return
    page.wait_for_load_state("load")
    width = page.evaluate("document.scrollingElement.scrollWidth")
    if width > PHONE["width"]:
        culprits = page.evaluate(WIDEST)
        wide.append(f"{name} ({url}): {width} px ({culprits})")
    if not scripts:
        return  # a document whose policy runs no script at all (an email's HTML frame)
    if not response.text().lstrip().lower().startswith("<!doctype"):
        return  # a fragment that pages fetch into themselves, checked as part of them
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.add_script_tag(url=server.url + AXE)
    for violation in page.evaluate(SERIOUS):
        violations.append(f"{name} ({url}): {violation}")


@pytest.mark.timeout(1800)  # some sixty pages, each checked by axe-core on a shared machine
def test_every_page_fits_a_phone_and_passes_axe(  # noqa: F811
    daphne_server,  # noqa: F811
    browser,  # noqa: F811
    admin_user,
    page_urls,  # noqa: F811
):
    page = log_in(browser, daphne_server, admin_user, viewport=PHONE)  # noqa: F405
    wide, violations, visited = [], [], []
    for name, url in page_urls.items():
        probe = page.request.get(daphne_server.url + url)
        if probe.status == 405 or "attachment" in probe.headers.get("content-disposition", ""):
            continue  # a POST-only action, or a download
        if "html" not in probe.headers.get("content-type", ""):
            continue
        policy = probe.headers.get("content-security-policy", "")
        scripts = "script-src 'none'" not in policy and "sandbox" not in policy
        _check(page, daphne_server, name, url, wide, violations, scripts=scripts)
        visited.append(name)
    # The pages anyone may open: the login page, offline page and the error pages.
    anonymous = browser.new_context(viewport=PHONE).new_page()
    for name, url in (("login", reverse("login")), ("offline", reverse("offline"))):
        _check(anonymous, daphne_server, name, url, wide, violations)
    assert {"inbox", "conversation_detail", "sandbox", "profile", "settings"} <= set(visited)
    problems = [f"wider than the phone: {line}" for line in wide] + violations
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("language", "inbox_word", "send_word"),
    [("ru", "Входящие", "Отправить"), ("uk", "Вхідні", "Надіслати")],
)
def test_log_in_read_and_reply_on_a_phone(daphne_server, browser, language, inbox_word, send_word):  # noqa: F811
    agent = UserFactory(language=language)
    conversation = ConversationFactory(company=agent.company)
    MessageFactory(conversation=conversation, direction="in", body="Привіт! Hello!")
    page = log_in(browser, daphne_server, agent, viewport=PHONE)  # noqa: F405
    assert page.evaluate("document.documentElement.lang") == language

    # The navigation folds behind the menu button; it opens and names the inbox.
    nav = page.locator("#main-nav")
    assert not nav.is_visible()
    page.locator("button.menu-toggle").click()
    assert nav.is_visible()
    nav.get_by_role("link", name=inbox_word).click()
    page.wait_for_url("**/inbox/")

    row = page.locator(f'[data-conversation-id="{conversation.pk}"] a.conv-link')
    row.click()
    page.wait_for_url(f"**/inbox/{conversation.pk}/")
    reply = page.locator("#reply-box textarea.reply-input")
    box = reply.bounding_box()
    import os

    if os.environ.get("SCREENSHOTS"):
        page.screenshot(path=f"{os.environ['SCREENSHOTS']}/phone-conversation-{language}.png")
    assert box is not None and box["y"] + box["height"] <= PHONE["height"], (
        "reply box below the fold"
    )
    assert page.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]

    reply.fill("Дякуємо / Спасибо")
    page.get_by_role("button", name=send_word, exact=True).click()
    page.locator(".msg-out .msg-body", has_text="Дякуємо / Спасибо").wait_for()
    assert Message.objects.filter(conversation=conversation, direction="out").count() == 1

    page.locator("a.conversation-back").click()
    page.wait_for_url("**/inbox/")
    assert page.locator(f'[data-conversation-id="{conversation.pk}"]').is_visible()


def test_the_app_installs_and_has_an_offline_page(daphne_server, browser):  # noqa: F811
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    page.goto(daphne_server.url + reverse("login"))
    manifest_url = page.locator('link[rel="manifest"]').get_attribute("href")
    manifest = page.request.get(daphne_server.url + manifest_url)
    assert manifest.headers["content-type"].startswith("application/manifest+json")
    body = json.loads(manifest.text())
    assert body["display"] == "standalone" and body["start_url"] == reverse("inbox")
    sizes = set()
    for icon in body["icons"]:
        fetched = page.request.get(daphne_server.url + icon["src"])
        assert fetched.status == 200 and fetched.headers["content-type"] == "image/png"
        sizes.add(icon["sizes"])
    assert {"192x192", "512x512"} <= sizes
    favicon = page.locator('link[rel="icon"]').first.get_attribute("href")
    assert page.request.get(daphne_server.url + favicon).status == 200

    worker = page.request.get(daphne_server.url + reverse("service_worker"))
    assert worker.headers["service-worker-allowed"] == "/"
    assert "javascript" in worker.headers["content-type"]
    # The page registers it for the whole site; it caches the offline page, which is
    # then served when the network is gone.
    page.wait_for_function(
        "navigator.serviceWorker.ready.then((r) => r.active && r.scope.endsWith('/'))"
    )
    page.wait_for_function("caches.has('switchboard-offline-v1')")
    page.reload()
    context.set_offline(True)
    page.goto(daphne_server.url + reverse("inbox"))
    assert page.locator("h1").inner_text() == "You are offline"
    context.set_offline(False)


def test_the_sandbox_bot_answers_the_customer_on_a_phone(daphne_server, browser, admin_user):  # noqa: F811
    """Issue #20: on a phone, the admin adds a bot rule to the sandbox, writes its keyword as
    the customer, and the bot's answer (run by the bots' task, as the worker runs it: the
    live server has no worker) appears in the customer's chat, which fits the screen."""
    from channels_integrations.whatsapp.tasks import answer_with_bots

    from .conftest import eager_tasks

    page = log_in(browser, daphne_server, admin_user, viewport=PHONE)  # noqa: F405
    page.goto(daphne_server.url + reverse("sandbox"))
    page.get_by_role("link", name="bot").first.click()
    page.fill("#sandbox-rule-trigger", "price")
    page.fill("#sandbox-rule-reply", "From 10 € a month, says the bot.")
    page.get_by_role("button", name="Add rule").click()
    page.wait_for_load_state("load")
    page.fill("#sandbox-body", "What is the price?")
    page.get_by_role("button", name="Send as the customer").click()
    page.wait_for_load_state("load")

    inbound = Message.objects.get(direction="in", body="What is the price?")
    with eager_tasks():
        answer_with_bots.delay(inbound.pk)  # the task the worker runs; its send task too
    answer = page.locator("#sandbox-thread .msg-body", has_text="From 10 € a month, says the bot.")
    answer.wait_for()  # the thread refreshes itself every few seconds
    assert answer.is_visible()
    author = page.locator("#sandbox-thread .msg-author", has_text="Bot")
    assert author.count() == 1
    # The page with its bot and broadcast sections fits the phone and passes axe-core.
    wide, violations = [], []
    _check(page, daphne_server, "sandbox", reverse("sandbox"), wide, violations)
    assert not wide + violations, "\n".join(wide + violations)
    assert page.locator("#sandbox-broadcast input[type=checkbox]").count() == 1


def test_a_supervisors_read_only_members_page_fits_a_phone(  # noqa: F811
    daphne_server,  # noqa: F811
    browser,  # noqa: F811
    company,
    admin_user,
    agent_user,
):
    from accounts.models import Role

    supervisor = UserFactory(company=company, role=Role.SUPERVISOR, username="sue")
    page = log_in(browser, daphne_server, supervisor, viewport=PHONE)  # noqa: F405
    wide, violations = [], []
    _check(page, daphne_server, "members (supervisor)", reverse("members"), wide, violations)
    assert not wide + violations, "\n".join(wide + violations)
    assert page.locator('[data-role="read-only-note"]').is_visible()
    assert page.locator('[data-member="bob"]').is_visible()
    assert page.locator('[data-role="invite-form"], select[name="role"]').count() == 0
