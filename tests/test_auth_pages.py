"""Login, logout and password change pages."""

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
