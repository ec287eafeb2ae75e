"""Members and Teams pages in a real browser at 390×844 against a live daphne: an admin
invites by link, the invitee joins from a phone, presence shows live, a team with business
hours is created, and nothing scrolls sideways."""

import re

import pytest
from playwright.sync_api import expect

from accounts.models import Role, User
from teams.models import Team

from .factories import CompanyFactory, UserFactory
from .live import *  # noqa: F403  (fixtures: daphne_server, browser; helpers log_in, wait_live)
from .test_browser import _screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
NEW_PASSWORD = "a-very-new-password-42"


def _fits(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_invite_join_and_presence_on_a_phone(browser, daphne_server):
    company = CompanyFactory(name="Acme Logistics")
    admin = UserFactory(company=company, role=Role.ADMIN, username="alice", first_name="Alice")
    page = log_in(browser, daphne_server, admin, viewport=PHONE)  # noqa: F405
    page.goto(daphne_server.url + "/settings/members/")
    wait_live(page)  # noqa: F405
    page.reload()  # her own socket is connected: she is online
    expect(page.locator(f'[data-presence="{admin.pk}"]')).to_have_text("Online")
    _fits(page)

    page.select_option('select[name="role"]', "agent")
    page.click('[data-role="invite-form"] button[type="submit"]')
    link = page.locator("#invite-link").input_value()
    assert re.search(r"/invite/inv_", link)
    _fits(page)
    _screenshot(page, "members-invite-390")

    invitee = browser.new_context(viewport=PHONE)
    phone = invitee.new_page()
    phone.goto(link)
    expect(phone.locator("h1")).to_contain_text("Join Acme Logistics")
    phone.fill('input[name="username"]', "nina")
    phone.fill('input[name="first_name"]', "Nina")
    phone.fill('input[name="password"]', NEW_PASSWORD)
    phone.fill('input[name="password_again"]', NEW_PASSWORD)
    phone.click('button[type="submit"]')
    phone.wait_for_url(lambda url: "/invite/" not in url)
    _fits(phone)
    nina = User.objects.get(username="nina")
    assert nina.company == company and nina.role == Role.AGENT

    # Nina's page holds a socket: Alice's Members page shows her online without a reload.
    page.reload()
    wait_live(page)  # noqa: F405
    wait_live(phone)  # noqa: F405
    expect(page.locator(f'[data-presence="{nina.pk}"]')).to_have_text("Online")
    # Nina sets herself away from the navigation; Alice sees it live.
    phone.goto(daphne_server.url + "/inbox/")
    wait_live(phone)  # noqa: F405
    phone.click(".menu-toggle")  # on a phone the navigation (and the toggle) is behind Menu
    phone.click('[data-role="away-toggle"]')
    expect(phone.locator('[data-role="away-toggle"]')).to_contain_text("I'm back")
    expect(page.locator(f'[data-presence="{nina.pk}"]')).to_have_text("Away")
    _screenshot(page, "members-presence-390")
    invitee.close()


def test_teams_page_creates_a_team_with_hours_on_a_phone(browser, daphne_server):
    company = CompanyFactory(name="Acme Logistics")
    admin = UserFactory(company=company, role=Role.ADMIN, username="alice")
    bob = UserFactory(company=company, role=Role.AGENT, username="bob", first_name="Bob")
    page = log_in(browser, daphne_server, admin, viewport=PHONE)  # noqa: F405
    page.goto(daphne_server.url + "/settings/teams/")
    _fits(page)
    page.click('a[href="/settings/teams/new/"]')
    page.fill('input[name="name"]', "Sales")
    page.check(f'input[name="members"][value="{bob.pk}"]')
    page.check('input[name="hours_enabled"]')
    page.fill('input[name="timezone"]', "Europe/Berlin")
    page.fill('textarea[name="away_message"]', "Back at nine.")
    page.fill('input[name="open_0"]', "09:00")
    page.fill('input[name="close_0"]', "18:00")
    _fits(page)
    page.click('[data-role="team-form"] button[type="submit"]')
    expect(page.locator('[data-team="Sales"]')).to_contain_text("Bob")
    _fits(page)
    _screenshot(page, "teams-390")
    team = Team.objects.get(company=company)
    assert team.hours == {"0": ["09:00", "18:00"]} and team.hours_enabled
    assert list(team.members.all()) == [bob]


def test_presence_missed_before_the_socket_joined_is_read_again_on_connect(browser, daphne_server):
    """Bob comes online after Alice's Members page was rendered but before her socket joined
    the company's presence (held back here): the page reads the pills again once the socket
    is live, so Bob shows online instead of staying offline until his next change."""
    company = CompanyFactory(name="Acme Logistics")
    admin = UserFactory(company=company, role=Role.ADMIN, username="alice", first_name="Alice")
    bob = UserFactory(company=company, role=Role.AGENT, username="bob", first_name="Bob")
    page = log_in(browser, daphne_server, admin, viewport=PHONE)  # noqa: F405
    held = []
    page.route_web_socket(re.compile(r"/ws/"), lambda socket: held.append(socket))
    page.goto(daphne_server.url + "/settings/members/")
    expect(page.locator(f'[data-presence="{bob.pk}"]')).to_have_text("Offline")
    for _ in range(100):  # until the page opened its (held) socket
        if held:
            break
        page.wait_for_timeout(50)
    assert held and page.locator("html").get_attribute("data-realtime") != "live"

    bobs_page = log_in(browser, daphne_server, bob, viewport=PHONE)  # noqa: F405
    wait_live(bobs_page)  # noqa: F405  (online: presence.changed went out, Alice not listening)

    held[0].connect_to_server()
    wait_live(page)  # noqa: F405
    expect(page.locator(f'[data-presence="{bob.pk}"]')).to_have_text("Online")
    _fits(page)
    bobs_page.context.close()
