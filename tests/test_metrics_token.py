"""/metrics and its token: required with DEBUG off (unset: nobody gets the figures), checked
whenever set, open only in development (DEBUG on, no token)."""

import pytest

pytestmark = pytest.mark.django_db


def _get(client, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return client.get("/metrics", headers=headers)


def test_production_requires_the_token(client, settings):
    settings.DEBUG = False
    settings.METRICS_TOKEN = "scrape-secret-1"
    assert _get(client).status_code == 401
    assert _get(client, "wrong").status_code == 401
    answer = _get(client, "scrape-secret-1")
    assert answer.status_code == 200
    assert b"switchboard_webhook_inbox_waiting" in answer.content


def test_production_without_a_token_set_serves_nobody(client, settings):
    settings.DEBUG = False
    settings.METRICS_TOKEN = ""
    assert _get(client).status_code == 401
    assert _get(client, "").status_code == 401
    assert b"switchboard_" not in _get(client).content


def test_development_is_open_without_a_token_and_checks_one_when_set(client, settings):
    settings.DEBUG = True
    settings.METRICS_TOKEN = ""
    assert _get(client).status_code == 200
    settings.METRICS_TOKEN = "dev-token"
    assert _get(client).status_code == 401
    assert _get(client, "dev-token").status_code == 200
