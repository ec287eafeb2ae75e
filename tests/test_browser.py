"""Two people in two real browsers against a live daphne + Redis: what one does, or what arrives
from a channel, shows up in the other's page without a reload.

Chromium is Debian's (/usr/bin/chromium), driven headless by Playwright. Set SCREENSHOTS=<dir>
to keep a picture of each page at the end of a scenario.
"""

import os
import time

import pytest
from playwright.sync_api import expect

from accounts.models import Role
from messaging.models import Message, TeamChat
from messaging.services import Sender, ingest_inbound
from messaging.tasks import deliver_message

from .factories import (
    ChatMemberFactory,
    CompanyFactory,
    ConversationFactory,
    TeamChatFactory,
    UserFactory,
    WhatsAppNumberFactory,
)
from .live import *  # noqa: F403  (fixtures: daphne_server, browser; helpers log_in, wait_live)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RELOAD_MARK = "window.__switchboardNoReload"
# The client who writes in, in every scenario here.
MARIA = Sender(address="+4915112345678", name="Maria Lopez", phone="+4915112345678")


def _mark_no_reload(page) -> None:
    page.evaluate(f"{RELOAD_MARK} = true")


def _assert_not_reloaded(page) -> None:
    assert page.evaluate(f"{RELOAD_MARK} === true"), "the page was reloaded"


def _writes_in(number, sender: Sender, wamid: str, text: str):
    """`sender` writes to `number` from their phone (their own thread)."""
    return ingest_inbound(number, sender.phone, wamid, sender, text)


def _screenshot(page, name: str) -> None:
    folder = os.environ.get("SCREENSHOTS")
    if folder:
        page.screenshot(path=os.path.join(folder, f"{name}.png"))


def _wait_for(query, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = query()
        if found is not None:
            return found
        time.sleep(0.1)
    pytest.fail("timed out waiting for the database")


def _team(**company_kwargs):
    company = CompanyFactory(name="Acme Logistics", **company_kwargs)
    alice = UserFactory(
        company=company, username="alice", first_name="Alice", last_name="Admin", role=Role.ADMIN
    )
    bob = UserFactory(company=company, username="bob", first_name="Bob", last_name="Agent")
    return company, alice, bob


def test_inbox_is_live_for_every_member(daphne_server, browser, far_end):  # noqa: F405
    company, alice, bob = _team()
    number = WhatsAppNumberFactory(company=company, display_name="Support line")

    page_a = log_in(browser, daphne_server, alice)  # noqa: F405
    page_b = log_in(browser, daphne_server, bob)  # noqa: F405
    for page in (page_a, page_b):
        page.goto(daphne_server.url + "/inbox/")
        wait_live(page)  # noqa: F405
        _mark_no_reload(page)

    # A client writes in: the conversation appears in both lists.
    first = _writes_in(number, MARIA, "wamid.1", "Hi! Where is my order #1042?")
    row = f'#conversation-list li[data-conversation-id="{first.conversation.pk}"]'
    for page in (page_b, page_a):
        expect(page.locator(row)).to_contain_text("Maria Lopez")
        expect(page.locator(row)).to_contain_text("Where is my order #1042?")
        _assert_not_reloaded(page)

    # Bob opens it; the next message lands in the thread, and in Alice's list.
    page_b.click(row + " a")
    page_b.wait_for_url(f"**/inbox/{first.conversation.pk}/")
    wait_live(page_b)  # noqa: F405
    _mark_no_reload(page_b)
    expect(page_b.locator(f'#messages li[data-message-id="{first.message.pk}"]')).to_contain_text(
        "Where is my order"
    )
    second = _writes_in(number, MARIA, "wamid.2", "Can it go to my office?")
    expect(page_b.locator(f'#messages li[data-message-id="{second.message.pk}"]')).to_contain_text(
        "Can it go to my office?"
    )
    expect(page_a.locator(row)).to_contain_text("Can it go to my office?")

    # Bob replies: queued at once, then sent once the provider took it.
    page_b.fill("#reply-box textarea", "Of course. Which address?")
    page_b.click("#reply-box button[type=submit]")
    reply = _wait_for(
        lambda: Message.objects.filter(
            conversation=first.conversation, direction=Message.Direction.OUTBOUND
        ).first()
    )
    assert reply.body == "Of course. Which address?" and reply.author == bob
    item = page_b.locator(f'#messages li[data-message-id="{reply.pk}"]')
    expect(item).to_contain_text("Of course. Which address?")
    expect(item).to_have_attribute("data-status", "queued")
    expect(page_b.locator("#reply-box textarea")).to_have_value("")

    deliver_message(reply.pk)  # what the Celery worker runs
    assert [sent.body for sent in far_end.sent] == ["Of course. Which address?"]
    expect(item).to_have_attribute("data-status", "sent")
    expect(page_a.locator(row)).to_contain_text("Of course. Which address?")

    # Alice assigns it to herself from her own browser: Bob's header follows.
    page_a.click(row + " a")
    page_a.wait_for_url(f"**/inbox/{first.conversation.pk}/")
    wait_live(page_a)  # noqa: F405 (the page's scripts are up: its first refresh is done)
    page_a.click('#conversation-header [data-action="assign-me"]')
    expect(page_a.locator("#conversation-header")).to_have_attribute("data-assignee", str(alice.pk))
    expect(page_b.locator("#conversation-header")).to_have_attribute("data-assignee", str(alice.pk))
    expect(page_b.locator(row)).to_contain_text("Alice Admin")
    _assert_not_reloaded(page_b)
    _screenshot(page_b, "inbox")


def test_a_page_script_that_loads_after_the_socket_went_live_still_shows_what_came_meanwhile(
    daphne_server,  # noqa: F405
    browser,  # noqa: F405
):
    """The inbox's script comes late (a slow static file): the socket has said welcome, and a
    message arrived, before the script listens. It re-fetches the list when it starts
    listening, so the message shows up without a reload (before, the first "resync" had
    already gone by and the list stayed as rendered)."""
    company, alice, _bob = _team()
    number = WhatsAppNumberFactory(company=company)
    first = _writes_in(number, MARIA, "wamid.1", "Hello")
    page = log_in(browser, daphne_server, alice)  # noqa: F405
    arrived = []

    def late_script(route):
        wait_live(page)  # noqa: F405 (the socket said welcome; no inbox listener yet)
        ivan = Sender(address="+380501234567", name="Ivan Koval", phone="+380501234567")
        arrived.append(_writes_in(number, ivan, "wamid.2", "Are you there?"))
        page.wait_for_timeout(500)  # its event reaches the page, which has no listener for it
        route.continue_()

    page.route("**/static/js/inbox.js*", late_script)
    page.goto(daphne_server.url + "/inbox/")
    list_row = '#conversation-list li[data-conversation-id="{}"]'
    expect(page.locator(list_row.format(first.conversation.pk))).to_have_count(1)
    expect(page.locator(list_row.format(arrived[0].conversation.pk))).to_contain_text(
        "Are you there?"
    )


def test_a_live_refresh_waits_for_a_press_on_the_list_and_the_press_stays_a_click(
    daphne_server,  # noqa: F405
    browser,  # noqa: F405
):
    company, alice, _bob = _team()
    number = WhatsAppNumberFactory(company=company)
    tom = Sender(address="+4915187654321", name="Tom Berg", phone="+4915187654321")
    first = _writes_in(number, MARIA, "wamid.1", "Hello")
    page = log_in(browser, daphne_server, alice)  # noqa: F405
    # Going live re-fetches the list (its first "resync"): the rows are pressed only once that
    # refresh has replaced them, not while it may detach the row being measured.
    with page.expect_response(
        lambda response: response.request.headers.get("hx-target") == "inbox-list"
    ) as resynced:
        page.goto(daphne_server.url + "/inbox/")
        wait_live(page)  # noqa: F405
    resynced.value.finished()
    _mark_no_reload(page)

    def press(conversation_id):
        link = page.locator(f'#conversation-list li[data-conversation-id="{conversation_id}"] a')
        box = link.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.down()
        return link.element_handle()

    def row(conversation):
        return page.locator(f'#conversation-list li[data-conversation-id="{conversation.pk}"]')

    # A message arrives while the pointer is down on a row: the list is not replaced under it.
    pressed = press(first.conversation.pk)
    second = _writes_in(number, tom, "wamid.2", "Where is my parcel?")
    page.wait_for_timeout(1500)  # the refresh would have come by now (it comes within 0.2 s)
    assert pressed.evaluate("element => element.isConnected")
    expect(row(second.conversation)).to_have_count(0)
    # Released elsewhere (no click): the refresh it waited for comes now.
    page.mouse.move(5, 5)
    page.mouse.up()
    expect(row(second.conversation)).to_contain_text("Where is my parcel?")
    _assert_not_reloaded(page)

    # Pressed and released on the same row while another message arrives: still a click.
    press(first.conversation.pk)
    _writes_in(number, tom, "wamid.3", "Hello?")
    page.wait_for_timeout(500)
    page.mouse.up()
    page.wait_for_url(f"**/inbox/{first.conversation.pk}/")


def test_after_a_reconnect_the_inbox_catches_up_on_what_it_missed(
    daphne_server,  # noqa: F405
    browser,  # noqa: F405
):
    company, alice, bob = _team()
    number = WhatsAppNumberFactory(company=company)
    first = _writes_in(number, MARIA, "wamid.1", "Are you open on Sunday?")

    page = log_in(browser, daphne_server, bob)  # noqa: F405
    page.goto(f"{daphne_server.url}/inbox/{first.conversation.pk}/")
    wait_live(page)  # noqa: F405
    _mark_no_reload(page)

    # The server goes away; what happens meanwhile is published to nobody.
    daphne_server.stop()
    page.wait_for_selector('html[data-realtime="offline"]', state="attached")
    missed = _writes_in(number, MARIA, "wamid.2", "Hello? Anyone there?")
    tom = Sender(address="+4915187654321", name="Tom Becker", phone="+4915187654321")
    other = _writes_in(number, tom, "wamid.3", "My parcel is damaged")
    daphne_server.start()

    # The page reconnects by itself (backoff with jitter: allow a few attempts) and re-fetches
    # the list and the open conversation.
    wait_live(page, timeout_ms=45_000)  # noqa: F405
    expect(page.locator(f'#messages li[data-message-id="{missed.message.pk}"]')).to_contain_text(
        "Anyone there?"
    )
    expect(
        page.locator(f'#conversation-list li[data-conversation-id="{other.conversation.pk}"]')
    ).to_contain_text("My parcel is damaged")
    _assert_not_reloaded(page)


def test_deleted_chat_vanishes_from_the_other_members_list(daphne_server, browser):  # noqa: F405
    company, alice, bob = _team()
    chat = TeamChatFactory(company=company, name="Night shift", created_by=alice)
    ChatMemberFactory(chat=chat, user=alice)
    ChatMemberFactory(chat=chat, user=bob)

    page_b = log_in(browser, daphne_server, bob)  # noqa: F405
    page_b.goto(daphne_server.url + "/chats/")
    wait_live(page_b)  # noqa: F405
    item = page_b.locator(f'#chat-list li[data-chat-id="{chat.pk}"]')
    expect(item).to_contain_text("Night shift")
    _mark_no_reload(page_b)

    page_a = log_in(browser, daphne_server, alice)  # noqa: F405
    page_a.goto(f"{daphne_server.url}/chats/{chat.pk}/")
    page_a.on("dialog", lambda dialog: dialog.accept())
    page_a.click('button[data-action="delete-chat"]')
    page_a.wait_for_url(lambda url: url.rstrip("/").endswith("/chats"))

    expect(item).to_have_count(0)
    _assert_not_reloaded(page_b)
    assert not TeamChat.objects.filter(pk=chat.pk).exists()
    _screenshot(page_b, "chats")


def test_an_agent_viewing_a_conversation_is_told_when_its_number_is_deleted(daphne_server, browser):  # noqa: F405
    from channels_integrations.whatsapp.numbers import delete_number

    company, alice, bob = _team()
    number = WhatsAppNumberFactory(company=company)
    conversation = _writes_in(number, MARIA, "wamid.1", "Hello?").conversation

    page = log_in(browser, daphne_server, bob)  # noqa: F405
    page.goto(f"{daphne_server.url}/inbox/{conversation.pk}/")
    wait_live(page)  # noqa: F405
    _mark_no_reload(page)

    assert delete_number(alice, number) == "deleted"

    expect(page.locator('[data-role="conversation-removed"]')).to_contain_text("was removed")
    expect(page.locator("#reply-box textarea")).to_be_disabled()
    expect(
        page.locator(f'#conversation-list li[data-conversation-id="{conversation.pk}"]')
    ).to_have_count(0)
    _assert_not_reloaded(page)


def test_an_agent_viewing_a_merged_away_conversation_moves_to_the_whole_one(daphne_server, browser):  # noqa: F405
    from messaging.services.merge import merge_conversations

    from .factories import EmailAccountFactory

    company, _alice, bob = _team()
    mailbox = EmailAccountFactory(company=company)
    anna = Sender(address="anna@example.org", name="Anna", email="anna@example.org")
    reply = ingest_inbound(mailbox, "<reply@x>", "<reply@x>", anna, "Re: the offer").conversation
    original = ingest_inbound(mailbox, "<orig@x>", "<orig@x>", anna, "The offer").conversation

    page = log_in(browser, daphne_server, bob, viewport={"width": 390, "height": 844})  # noqa: F405
    page.goto(f"{daphne_server.url}/inbox/{reply.pk}/")
    wait_live(page)  # noqa: F405

    merge_conversations(original, [reply])

    page.wait_for_url(f"**/inbox/{original.pk}/")
    expect(page.locator("#messages")).to_contain_text("Re: the offer")
    expect(page.locator("#messages")).to_contain_text("The offer")


def test_a_failed_reply_is_sent_again_from_a_phone(daphne_server, browser, far_end):  # noqa: F405
    """At 390×844: a failed reply says why and offers "Send again"; a tap queues the same
    message again, and it turns sent live when the worker has sent it."""
    company, _alice, bob = _team()
    conversation = ConversationFactory(company=company, client__name="Maria Lopez")
    failed = conversation.messages.create(
        direction=Message.Direction.OUTBOUND,
        author=bob,
        body="Your parcel left today.",
        status=Message.Status.FAILED,
        error="Message undeliverable: the recipient may not be on WhatsApp.",
    )
    page = log_in(browser, daphne_server, bob, viewport={"width": 390, "height": 844})  # noqa: F405
    page.goto(f"{daphne_server.url}/inbox/{conversation.pk}/")
    wait_live(page)  # noqa: F405
    item = page.locator(f'#messages li[data-message-id="{failed.pk}"]')
    expect(item).to_contain_text("may not be on WhatsApp")
    button = item.get_by_role("button", name="Send again")
    expect(button).to_be_visible()
    # The thread may be re-rendered once as the socket connects: measure the settled button.
    box = _wait_for(button.bounding_box)
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390  # on screen, no sideways
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    _screenshot(page, "failed-reply-390")

    button.click()
    expect(item).to_have_attribute("data-status", "queued")
    expect(item.get_by_role("button", name="Send again")).to_have_count(0)
    deliver_message(failed.pk)  # what the Celery worker runs
    assert [sent.body for sent in far_end.sent] == ["Your parcel left today."]
    expect(item).to_have_attribute("data-status", "sent")
    _screenshot(page, "failed-reply-sent-again-390")


def test_the_locked_out_login_page_at_phone_width(daphne_server, browser):  # noqa: F405
    company, _alice, bob = _team()
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    for password in ["wrong"] * 5 + ["still wrong"]:
        page.goto(daphne_server.url + "/login/")
        page.fill('input[name="username"]', bob.username)
        page.fill('input[name="password"]', password)
        page.click('button[type="submit"]')
    notice = page.locator('[data-role="locked-out"]')
    expect(notice).to_contain_text("Too many failed log-ins")
    box = notice.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    _screenshot(page, "login-locked-out-390")
    context.close()


def test_reactions_live_on_a_phone(daphne_server, browser, far_end):  # noqa: F405
    """At 390×844: a customer's reaction appears under the message it targets without a
    reload (never as a message), and an agent reacts from the picker; the Graph API's far end
    gets the reaction."""
    from channels_integrations.whatsapp.inbound import receive_cloud_webhook
    from messaging.services.reactions import send_reaction

    company, _alice, bob = _team()
    number = WhatsAppNumberFactory(
        company=company,
        provider="cloud",
        cloud_phone_number_id="106540352242922",
        cloud_access_token="token",
    )
    asked = ingest_inbound(number, "4915112345678", "wamid.ask", MARIA, "Is it in stock?").message
    page = log_in(browser, daphne_server, bob, viewport={"width": 390, "height": 844})  # noqa: F405
    page.goto(f"{daphne_server.url}/inbox/{asked.conversation_id}/")
    wait_live(page)  # noqa: F405
    _mark_no_reload(page)
    item = page.locator(f'#messages li[data-message-id="{asked.pk}"]')
    expect(item).to_contain_text("Is it in stock?")

    def reaction(emoji):
        message = {"from": "4915112345678", "id": f"wamid.r.{emoji}", "type": "reaction"}
        message["reaction"] = {"message_id": "wamid.ask", "emoji": emoji}
        value = {"metadata": {"phone_number_id": "106540352242922"}, "messages": [message]}
        return {"entry": [{"changes": [{"field": "messages", "value": value}]}]}

    receive_cloud_webhook(number, reaction("😮"))
    expect(item.locator('[data-role="customer-reaction"]')).to_have_text("😮")
    expect(page.locator("#messages li[data-message-id]")).to_have_count(1)
    receive_cloud_webhook(number, reaction(""))
    expect(item.locator('[data-role="customer-reaction"]')).to_have_count(0)
    receive_cloud_webhook(number, reaction("🙏"))
    expect(item.locator('[data-role="customer-reaction"]')).to_have_text("🙏")

    # Bob reacts from the picker, thumb-sized, on screen.
    _wait_for(item.locator("details.react-picker summary").bounding_box)
    item.locator("details.react-picker summary").click()
    choice = item.get_by_role("button", name="👍")
    box = _wait_for(choice.bounding_box)
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390 and box["height"] >= 40
    choice.click()
    expect(item.locator('[data-role="our-reaction"]')).to_have_text("👍")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    send_reaction(asked.pk)  # what the Celery worker runs
    assert [(sent.body, sent.quoted) for sent in far_end.sent] == [("reaction:👍", "wamid.ask")]
    _assert_not_reloaded(page)
    _screenshot(page, "reactions-390")
