"""Channels and clients over the REST API: clear 400s naming the field, nothing half-written,
secrets write-only, and only company admins may change channels."""

import logging

import pytest

from channels_integrations.models import EmailAccount, TelegramAccount, WhatsAppNumber
from crm.models import Client

from .factories import (
    ClientFactory,
    EmailAccountFactory,
    TelegramAccountFactory,
    UserFactory,
    WhatsAppNumberFactory,
)

pytestmark = pytest.mark.django_db

TELEGRAM_URL = "/api/v1/telegram/accounts/"
VALID_TELEGRAM = {
    "name": "Sales",
    "phone": "+4915123456789",
    "api_id": 28906808,
    "api_hash": "0123456789abcdef0123456789abcdef",
    "session_string": "1BVtsOsecretsession",
}


@pytest.mark.parametrize("bad", ["abc", "-5", "1.5", 1.5, -5, 0, True, "", None, "12e3", " "])
def test_telegram_api_id_must_be_a_positive_integer(admin_api, bad):
    response = admin_api.post(TELEGRAM_URL, dict(VALID_TELEGRAM, api_id=bad), format="json")
    assert response.status_code == 400
    assert "api_id" in response.json()
    assert TelegramAccount.objects.count() == 0  # nothing half-written


@pytest.mark.parametrize("good", [28906808, "28906808"])
def test_telegram_api_id_integer_is_saved_as_integer(admin_api, admin_user, good):
    response = admin_api.post(TELEGRAM_URL, dict(VALID_TELEGRAM, api_id=good), format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["api_id"] == 28906808
    account = TelegramAccount.objects.get()
    assert account.api_id == 28906808
    assert account.company == admin_user.company
    assert account.api_hash == VALID_TELEGRAM["api_hash"]


def test_telegram_api_hash_must_be_32_hex_characters(admin_api):
    response = admin_api.post(TELEGRAM_URL, dict(VALID_TELEGRAM, api_hash="not-hex"), format="json")
    assert response.status_code == 400
    assert "api_hash" in response.json()
    response = admin_api.post(TELEGRAM_URL, dict(VALID_TELEGRAM, api_hash=""), format="json")
    assert response.status_code == 400
    assert "api_hash" in response.json()


def test_duplicate_phone_in_same_company_names_phone(admin_api, admin_user, other_company):
    TelegramAccountFactory(company=other_company, phone=VALID_TELEGRAM["phone"])  # elsewhere: fine
    assert admin_api.post(TELEGRAM_URL, VALID_TELEGRAM, format="json").status_code == 201
    response = admin_api.post(TELEGRAM_URL, VALID_TELEGRAM, format="json")
    assert response.status_code == 400
    assert "phone" in response.json()
    assert TelegramAccount.objects.filter(company=admin_user.company).count() == 1


SECRET_CASES = [
    (
        "/api/v1/whatsapp/numbers/",
        WhatsAppNumberFactory,
        ["cloud_access_token", "cloud_app_secret", "cloud_verify_token"],
    ),
    (TELEGRAM_URL, TelegramAccountFactory, ["api_hash", "session_string"]),
    ("/api/v1/email/accounts/", EmailAccountFactory, ["password"]),
]


@pytest.mark.parametrize("url,factory,secrets", SECRET_CASES)
def test_secrets_never_appear_in_api_responses(admin_api, admin_user, url, factory, secrets):
    row = factory(company=admin_user.company)
    values = [getattr(row, name) for name in secrets]
    assert all(values)
    responses = [
        admin_api.get(url),
        admin_api.get(f"{url}{row.pk}/"),
        admin_api.patch(f"{url}{row.pk}/", {"is_active": False}, format="json"),
        admin_api.options(url),
    ]
    for response in responses:
        assert response.status_code == 200
        for value in values:
            assert value not in response.content.decode()
    detail = responses[1].json()
    for name in secrets:
        assert name not in detail
        assert detail[f"{name}_set"] is True


@pytest.mark.parametrize("url,factory,secrets", SECRET_CASES)
def test_blank_secret_on_update_keeps_it_and_a_new_one_replaces_it(
    admin_api, admin_user, url, factory, secrets
):
    row = factory(company=admin_user.company)
    name = secrets[0]
    old = getattr(row, name)
    assert admin_api.patch(f"{url}{row.pk}/", {name: ""}, format="json").status_code == 200
    row.refresh_from_db()
    assert getattr(row, name) == old
    new = "abcdefabcdefabcdefabcdefabcdef12" if name == "api_hash" else "a-brand-new-secret"
    response = admin_api.patch(f"{url}{row.pk}/", {name: new}, format="json")
    assert response.status_code == 200, response.json()
    row.refresh_from_db()
    assert getattr(row, name) == new


def test_secrets_are_not_logged(admin_api, caplog):
    with caplog.at_level(logging.DEBUG):
        admin_api.post(TELEGRAM_URL, VALID_TELEGRAM, format="json")
    assert "TelegramAccount created" in caplog.text
    for secret in (VALID_TELEGRAM["api_hash"], VALID_TELEGRAM["session_string"]):
        assert secret not in caplog.text


def test_agents_read_channels_but_cannot_change_them(api_for, agent_user):
    number = WhatsAppNumberFactory(company=agent_user.company)
    api = api_for(agent_user)
    assert api.get("/api/v1/whatsapp/numbers/").status_code == 200
    assert (
        api.post(
            "/api/v1/whatsapp/numbers/", {"phone": "+4915100000001"}, format="json"
        ).status_code
        == 403
    )
    assert (
        api.patch(
            f"/api/v1/whatsapp/numbers/{number.pk}/", {"display_name": "x"}, format="json"
        ).status_code
        == 403
    )
    assert (
        api.delete(
            f"{TELEGRAM_URL}{TelegramAccountFactory(company=agent_user.company).pk}/"
        ).status_code
        == 403
    )


def test_whatsapp_number_phone_is_validated_and_normalised(admin_api):
    url = "/api/v1/whatsapp/numbers/"
    response = admin_api.post(url, {"phone": "12"}, format="json")
    assert response.status_code == 400 and "phone" in response.json()
    response = admin_api.post(
        url, {"phone": "+49 30 1234 5678", "provider": "cloud"}, format="json"
    )
    assert response.status_code == 201, response.json()
    assert response.json()["phone"] == "+493012345678"
    assert admin_api.post(url, {"phone": "+493012345678"}, format="json").json().keys() == {"phone"}
    response = admin_api.post(
        url, {"phone": "+493012345679", "provider": "carrier-pigeon"}, format="json"
    )
    assert response.status_code == 400 and "provider" in response.json()
    assert WhatsAppNumber.objects.count() == 1


def test_email_account_owner_must_be_a_member_of_my_company(admin_api, admin_user, other_company):
    stranger = UserFactory(company=other_company)
    payload = {
        "address": "help@acme.example",
        "imap_host": "imap.acme.example",
        "smtp_host": "smtp.acme.example",
        "username": "help@acme.example",
        "password": "pw",
    }
    response = admin_api.post(
        "/api/v1/email/accounts/", dict(payload, owner=stranger.pk), format="json"
    )
    assert response.status_code == 400 and "owner" in response.json()
    response = admin_api.post(
        "/api/v1/email/accounts/", dict(payload, imap_port=70000), format="json"
    )
    assert response.status_code == 400 and "imap_port" in response.json()
    response = admin_api.post("/api/v1/email/accounts/", payload, format="json")
    assert response.status_code == 201
    assert EmailAccount.objects.get().owner == admin_user  # defaults to whoever connected it


def test_deleting_an_email_account_removes_it(admin_api, admin_user):
    account = EmailAccountFactory(company=admin_user.company)
    assert admin_api.delete(f"/api/v1/email/accounts/{account.pk}/").status_code == 204
    assert not EmailAccount.objects.filter(pk=account.pk).exists()


# ---------------------------------------------------------------- clients


def test_client_crud_and_validation(api_for, agent_user, other_company):
    api = api_for(agent_user)
    response = api.post(
        "/api/v1/clients/",
        {"name": "Maria", "phone": "+49 151 2345 6789", "email": "Maria@Example.org"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["phone"] == "+4915123456789"
    assert body["email"] == "maria@example.org"

    duplicate = api.post(
        "/api/v1/clients/", {"name": "Again", "phone": "+4915123456789"}, format="json"
    )
    assert duplicate.status_code == 400 and list(duplicate.json()) == ["phone"]
    duplicate = api.post(
        "/api/v1/clients/", {"name": "Again", "email": "MARIA@example.org"}, format="json"
    )
    assert duplicate.status_code == 400 and list(duplicate.json()) == ["email"]
    invalid = api.post(
        "/api/v1/clients/", {"name": "Bad", "phone": "not a phone", "email": "nope"}, format="json"
    )
    assert invalid.status_code == 400 and set(invalid.json()) == {"phone", "email"}
    assert Client.objects.filter(company=agent_user.company).count() == 1

    ClientFactory(company=other_company, phone="+4915111111111")  # other company: no clash
    other = api.post(
        "/api/v1/clients/", {"name": "Jonas", "phone": "+4915111111111"}, format="json"
    )
    assert other.status_code == 201

    client_id = body["id"]
    patched = api.patch(f"/api/v1/clients/{client_id}/", {"notes": "VIP"}, format="json")
    assert patched.status_code == 200 and patched.json()["notes"] == "VIP"
    assert api.delete(f"/api/v1/clients/{client_id}/").status_code == 204


def test_api_token_authenticates_and_revoked_token_does_not(client, agent_user):
    from rest_framework.test import APIClient

    session_api = APIClient()
    session_api.force_authenticate(agent_user)
    created = session_api.post("/api/v1/tokens/", {"name": "cli"}, format="json")
    assert created.status_code == 201
    raw = created.json()["token"]
    assert raw.startswith("sb_")
    assert "token" not in session_api.get(f"/api/v1/tokens/{created.json()['id']}/").json()

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    me = api.get("/api/v1/me/")
    assert me.status_code == 200 and me.json()["username"] == agent_user.username

    assert session_api.delete(f"/api/v1/tokens/{created.json()['id']}/").status_code == 204
    assert api.get("/api/v1/me/").status_code == 401
    api.credentials(HTTP_AUTHORIZATION="Bearer sb_made_up")
    assert api.get("/api/v1/me/").status_code == 401


def test_a_token_stops_working_when_its_user_or_company_is_deactivated(agent_user):
    """The token lookup (one SQL statement per request) checks the user and the company each
    time, and hands the view the user with their company."""
    from rest_framework.test import APIClient

    from accounts.models import ApiToken

    token, raw = ApiToken.issue(agent_user, "cli")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    me = api.get("/api/v1/me/")
    assert me.status_code == 200 and me.json()["username"] == agent_user.username
    assert api.get("/api/v1/conversations/").status_code == 200
    found = ApiToken.find(raw)
    assert found.pk == token.pk and found.user.company.pk == agent_user.company_id
    token.refresh_from_db()
    assert token.last_used_at is not None  # noted (at most once a minute)

    company = agent_user.company
    company.is_active = False
    company.save()
    assert api.get("/api/v1/me/").status_code == 401
    company.is_active = True
    company.save()
    assert api.get("/api/v1/me/").status_code == 200
    agent_user.is_active = False
    agent_user.save()
    assert api.get("/api/v1/me/").status_code == 401
