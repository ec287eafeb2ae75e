"""GET /health reports the real database and Redis; a dead Redis is a 503 naming it."""

import pytest

pytestmark = pytest.mark.django_db


def test_health_ok_when_database_and_redis_are_up(client):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["database"] == "ok"
    assert body["redis"] == "ok"
    assert body["down"] == []


def test_health_503_names_redis_when_it_is_unreachable(client, settings):
    # A port nothing listens on: the same failure a stopped Redis gives.
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["redis"] == "down"
    assert body["database"] == "ok"
    assert body["down"] == ["redis"]


def test_health_503_names_database_when_it_is_unreachable(client, monkeypatch):
    from django.db import connection

    def refuse(*args, **kwargs):
        from django.db import OperationalError

        raise OperationalError("connection refused")

    monkeypatch.setattr(connection, "cursor", refuse)
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["database"] == "down"
    assert response.json()["down"] == ["database"]


def test_health_needs_no_login_and_is_not_cached(client):
    response = client.get("/health")
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
