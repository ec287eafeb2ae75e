"""Russian and Ukrainian at desktop size, in a real browser: log in, the inbox, a conversation,
a reply, a team chat (words drawn by our JavaScript, from the JavaScript catalogue) and the
settings pages show the language's words and none of the English main labels, and axe-core
finds no serious or critical violation on any of them (issue 20)."""

import pytest
from django.urls import reverse
from django.utils import translation

from accounts.models import Role
from messaging.models import Message

from .factories import (
    ChatMemberFactory,
    ConversationFactory,
    MessageFactory,
    TeamChatFactory,
    UserFactory,
)
from .live import *  # noqa: F403  (fixtures: daphne_server, browser; helpers log_in)
from .test_browser_phone import AXE, SERIOUS

DESKTOP = {"width": 1360, "height": 860}
# English words of the main labels: none of them may be a whole label on a translated page.
ENGLISH = {
    "Dashboard",
    "Inbox",
    "Team chats",
    "Clients",
    "Deals",
    "Reports",
    "Settings",
    "Profile",
    "Log out",
    "Log in",
    "Password",
    "Username",
    "Reply",
    "Note",
    "Send",
    "Save",
    "Edit",
    "Cancel",
    "Open",
    "Pending",
    "Closed",
    "Snoozed",
    "Sent",
    "Delivered",
    "Queued",
    "Contact",
    "Language",
    "Skip to content",
}
# The visible labels of a page: navigation, headings, buttons, form labels, table heads,
# status pills.
LABELS = """() => Array.from(document.querySelectorAll(
    "nav a, h1, h2, h3, button, label, th, summary, .pill, .msg-status, [data-role=status]"))
  .filter((e) => e.offsetParent !== null || e.tagName === "SUMMARY")
  .map((e) => e.innerText.trim()).filter(Boolean)"""


def _words(language: str, *english: str) -> list[str]:
    with translation.override(language):
        return [translation.gettext(text) for text in english]


def _check(page, server, where: str, problems: list[str]) -> None:
    leftovers = sorted({text for text in page.evaluate(LABELS) if text in ENGLISH})
    if leftovers:
        problems.append(f"{where}: English labels {leftovers}")
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.add_script_tag(url=server.url + AXE)
    for violation in page.evaluate(SERIOUS):
        problems.append(f"{where}: {violation}")


@pytest.mark.timeout(900)
@pytest.mark.parametrize("language", ["ru", "uk"])
def test_the_main_flows_speak_the_language_at_desktop_size(daphne_server, browser, language):  # noqa: F811
    problems: list[str] = []
    agent = UserFactory(language=language, role=Role.ADMIN)
    conversation = ConversationFactory(company=agent.company)
    MessageFactory(conversation=conversation, direction="in", body="Привіт! Hello!")
    chat = TeamChatFactory(company=agent.company, name="Команда")
    ChatMemberFactory(chat=chat, user=agent)

    # The login page follows the browser's language before anyone logs in.
    anonymous = browser.new_context(viewport=DESKTOP, locale=language).new_page()
    anonymous.goto(daphne_server.url + reverse("login"))
    (log_in_word,) = _words(language, "Log in")
    assert anonymous.get_by_role("button", name=log_in_word).is_visible()
    _check(anonymous, daphne_server, "login", problems)

    page = log_in(browser, daphne_server, agent, viewport=DESKTOP)  # noqa: F405
    assert page.evaluate("document.documentElement.lang") == language
    inbox_word, open_word, send_word = _words(language, "Inbox", "Open", "Send")
    page.locator("#main-nav").get_by_role("link", name=inbox_word).click()
    page.wait_for_url("**/inbox/")
    _check(page, daphne_server, "inbox", problems)

    page.locator(f'[data-conversation-id="{conversation.pk}"] a.conv-link').click()
    page.wait_for_url(f"**/inbox/{conversation.pk}/")
    assert open_word in page.locator("#conversation-header [data-role=status]").inner_text()
    page.locator("#reply-box textarea.reply-input").fill("Дякуємо / Спасибо")
    page.get_by_role("button", name=send_word, exact=True).click()
    sent = page.locator(".msg-out", has_text="Дякуємо / Спасибо")
    sent.wait_for()
    assert Message.objects.filter(conversation=conversation, direction="out").count() == 1
    # The message's status pill is in the language (whatever the send got to offline).
    status = sent.locator("[data-role=status]").inner_text().strip()
    assert status in _words(language, *(label for _, label in Message.Status.choices))
    _check(page, daphne_server, "conversation", problems)

    # A team chat: the message is drawn by chats.js, its words from the JavaScript catalogue.
    page.goto(daphne_server.url + reverse("chat_detail", args=[chat.pk]))
    page.locator("#chat-send textarea").fill("Хто бере наступну?")
    page.locator("#chat-send button[type=submit]").click()
    mine = page.locator("#chat-messages li", has_text="Хто бере наступну?")
    mine.wait_for()
    (edit_word,) = _words(language, "Edit")
    assert mine.locator('[data-action="edit-message"]').inner_text() == edit_word != "Edit"
    _check(page, daphne_server, "chat", problems)

    for name in ("profile", "settings", "chats", "clients"):
        page.goto(daphne_server.url + reverse(name))
        page.wait_for_load_state("load")
        _check(page, daphne_server, name, problems)

    assert not problems, "\n".join(problems)
