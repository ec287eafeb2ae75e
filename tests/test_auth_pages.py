"""Login, logout and password change pages."""

import logging

import pytest
from django.urls import reverse

from accounts.models import User

from .factories import PASSWORD

pytestmark = pytest.mark.django_db


def test_login_page_renders(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert 'name="username"' in response.content.decode()


def test_login_with_bad_password_shows_form_error(client, agent_user):
    response = client.post(reverse("login"), {"username": agent_user.username, "password": "nope"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_login_follows_next(client, agent_user):
    response = client.post(
        reverse("login") + "?next=/clients/",
        {"username": agent_user.username, "password": PASSWORD, "next": "/clients/"},
    )
    assert response["Location"] == "/clients/"


def test_logged_in_user_visiting_login_goes_to_dashboard(client, agent_user):
    client.force_login(agent_user)
    response = client.get(reverse("login"))
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard")


def test_logout_works_via_post_only(client, agent_user):
    client.force_login(agent_user)
    assert client.get(reverse("logout")).status_code == 405  # Django 5: no GET logout
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert response["Location"] == reverse("login")
    assert client.get(reverse("dashboard")).status_code == 302


def test_superuser_without_company_logs_in_and_lands_in_admin(client):
    User.objects.create_superuser("root", "root@example.com", PASSWORD)
    response = client.post(
        reverse("login"), {"username": "root", "password": PASSWORD}, follow=True
    )
    assert response.redirect_chain[-1][0] == reverse("admin:index")


def test_password_change(client, agent_user):
    client.force_login(agent_user)
    assert client.get(reverse("password_change")).status_code == 200
    new_password = "a-brand-new-Passphrase-42"
    response = client.post(
        reverse("password_change"),
        {"old_password": PASSWORD, "new_password1": new_password, "new_password2": new_password},
    )
    assert response["Location"] == reverse("password_change_done")
    # Still logged in here, and the new password works.
    assert client.get(reverse("password_change_done")).status_code == 200
    agent_user.refresh_from_db()
    assert agent_user.check_password(new_password)


def test_password_change_with_wrong_old_password_shows_error(client, agent_user):
    client.force_login(agent_user)
    response = client.post(
        reverse("password_change"),
        {
            "old_password": "wrong",
            "new_password1": "x-Y-z-12345678",
            "new_password2": "x-Y-z-12345678",
        },
    )
    assert response.status_code == 200
    assert "old_password" in response.context["form"].errors


def test_admin_password_change_keeps_the_admin_template(client):
    # Our password templates have their own names so the admin's page stays the admin's.
    client.force_login(User.objects.create_superuser("root", "root@example.com", PASSWORD))
    response = client.get(reverse("admin:password_change"))
    assert response.status_code == 200
    assert "admin/base_site.html" in [t.name for t in response.templates]


# ---------------------------------------------------------------- throttling


def _log_in(client, username, password, address="203.0.113.7"):
    return client.post(
        reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address
    )


def test_five_wrong_passwords_lock_the_account_even_for_the_right_one(client, agent_user, caplog):
    for _ in range(4):
        assert _log_in(client, agent_user.username, "wrong").status_code == 200
    assert _log_in(client, agent_user.username, "wrong").status_code == 429  # the fifth
    response = _log_in(client, agent_user.username, PASSWORD)
    assert response.status_code == 429
    content = response.content.decode()
    assert "Too many failed log-ins" in content and 'data-role="locked-out"' in content
    assert "_auth_user_id" not in client.session
    # From another address too: the account itself is locked.
    assert _log_in(client, agent_user.username, PASSWORD, "198.51.100.9").status_code == 429
    assert any("AXES" in record.getMessage() for record in caplog.records)


def test_one_address_trying_many_accounts_is_locked_out(client, company):
    from .factories import UserFactory

    users = [UserFactory(company=company) for _ in range(6)]
    for user in users[:4]:
        assert _log_in(client, user.username, "wrong").status_code == 200
    assert _log_in(client, users[4].username, "wrong").status_code == 429  # the fifth
    assert _log_in(client, users[5].username, PASSWORD).status_code == 429
    # Someone else, elsewhere, logs in as usual.
    assert _log_in(client, users[5].username, PASSWORD, "198.51.100.9").status_code == 302


def test_a_success_clears_the_count(client, agent_user):
    for _ in range(4):
        _log_in(client, agent_user.username, "wrong")
    assert _log_in(client, agent_user.username, PASSWORD).status_code == 302
    client.logout()
    for _ in range(4):
        _log_in(client, agent_user.username, "wrong")
    assert _log_in(client, agent_user.username, PASSWORD).status_code == 302


def test_wrong_api_tokens_from_one_address_are_throttled(client, settings, agent_user, caplog):
    from accounts.models import ApiToken

    settings.API_TOKEN_FAILURES_PER_MINUTE = 3
    address = "192.0.2.44"
    with caplog.at_level(logging.WARNING, logger="accounts.authentication"):
        codes = [
            client.get(
                "/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer sb_wrong{n}", REMOTE_ADDR=address
            ).status_code
            for n in range(4)
        ]
    assert codes == [401, 401, 401, 429]
    # Each wrong token is a warning with the address; the token itself is never written.
    assert caplog.text.count(f"api: wrong token from {address}") == 4
    assert f"api: wrong tokens from {address} throttled" in caplog.text
    assert "sb_wrong" not in caplog.text
    _token, raw = ApiToken.issue(agent_user, "good")
    assert client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 200
