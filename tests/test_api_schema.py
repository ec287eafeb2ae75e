"""The OpenAPI schema documents every endpoint without a warning, and the docs page serves it."""

import pytest
from django.core.management import call_command


def test_schema_generates_without_warnings(tmp_path):
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml")
    )
    schema = (tmp_path / "schema.yml").read_text()
    for path in ("/api/v1/conversations/", "/api/v1/clients/", "/api/v1/telegram/accounts/"):
        assert path in schema


@pytest.mark.django_db
def test_docs_and_schema_are_served_to_members(api_for, agent_user):
    api = api_for(agent_user)
    assert api.get("/api/schema/").status_code == 200
    assert api.get("/api/docs/").status_code == 200
