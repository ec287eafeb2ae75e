"""Teams (Settings → Teams and /api/v1/teams/) and the team and lead distribution of each
channel row, edited on its settings page and in its API; another company's team or people
are refused, naming the field."""

import pytest
from django.urls import reverse

from teams.models import Distribution, Team

from .factories import (
    EmailAccountFactory,
    TelegramAccountFactory,
    UserFactory,
    WhatsAppNumberFactory,
)

pytestmark = pytest.mark.django_db


def test_teams_api_creates_edits_and_deletes_with_members(
    admin_api, admin_user, agent_user, other_company
):
    response = admin_api.post(
        "/api/v1/teams/",
        {
            "name": "Sales",
            "member_ids": [agent_user.pk],
            "hours_enabled": True,
            "timezone": "Europe/Berlin",
            "hours": {"0": ["09:00", "18:00"]},
            "away_message": "Back at nine.",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    team = response.json()
    assert team["members"] == [agent_user.pk] and team["hours"] == {"0": ["09:00", "18:00"]}
    stranger = UserFactory(company=other_company)
    refused = admin_api.patch(
        f"/api/v1/teams/{team['id']}/", {"member_ids": [stranger.pk]}, format="json"
    )
    assert refused.status_code == 400 and "members" in refused.json()
    duplicate = admin_api.post("/api/v1/teams/", {"name": "sales"}, format="json")
    assert duplicate.status_code == 400 and "name" in duplicate.json()
    bad_hours = admin_api.patch(
        f"/api/v1/teams/{team['id']}/", {"hours": {"0": ["18:00", "09:00"]}}, format="json"
    )
    assert bad_hours.status_code == 400 and "hours" in bad_hours.json()
    assert admin_api.delete(f"/api/v1/teams/{team['id']}/").status_code == 204
    assert not Team.objects.exists()


def test_agents_read_teams_but_cannot_change_them(api_for, admin_user, agent_user):
    Team.objects.create(company=admin_user.company, name="Sales")
    api = api_for(agent_user)
    assert len(api.get("/api/v1/teams/").json()["results"]) == 1
    assert api.post("/api/v1/teams/", {"name": "Mine"}, format="json").status_code == 403


def test_a_channel_row_takes_a_team_and_distribution_in_its_api(
    admin_api, admin_user, other_company
):
    team = Team.objects.create(company=admin_user.company, name="Sales")
    foreign = Team.objects.create(company=other_company, name="Theirs")
    for url, row in (
        ("/api/v1/whatsapp/numbers/", WhatsAppNumberFactory(company=admin_user.company)),
        ("/api/v1/telegram/accounts/", TelegramAccountFactory(company=admin_user.company)),
        ("/api/v1/email/accounts/", EmailAccountFactory(company=admin_user.company)),
    ):
        response = admin_api.patch(
            f"{url}{row.pk}/",
            {"team": team.pk, "distribution": "round_robin"},
            format="json",
        )
        assert response.status_code == 200, (url, response.json())
        assert response.json()["team"] == team.pk
        row.refresh_from_db()
        assert row.team == team and row.distribution == Distribution.ROUND_ROBIN
        refused = admin_api.patch(f"{url}{row.pk}/", {"team": foreign.pk}, format="json")
        assert refused.status_code == 400 and "team" in refused.json()
        row.refresh_from_db()
        assert row.team == team
    # Deleting the team leaves the channels, without a team.
    team.delete()
    row.refresh_from_db()
    assert row.team is None


def test_a_numbers_settings_page_sets_its_team_and_offers_only_own_teams(
    client, admin_user, other_company
):
    team = Team.objects.create(company=admin_user.company, name="Sales")
    Team.objects.create(company=other_company, name="Theirs")
    number = WhatsAppNumberFactory(company=admin_user.company)
    client.force_login(admin_user)
    page = client.get(reverse("number_edit", args=[number.pk])).content.decode()
    assert "Sales" in page and "Theirs" not in page
    data = {
        "phone": str(number.phone),
        "display_name": number.display_name,
        "provider": number.provider,
        "cloud_phone_number_id": number.cloud_phone_number_id,
        "team": team.pk,
        "distribution": "first_responder",
    }
    response = client.post(reverse("number_edit", args=[number.pk]), data)
    assert response.status_code == 302
    number.refresh_from_db()
    assert number.team == team and number.distribution == Distribution.FIRST_RESPONDER


def test_another_companys_team_is_404_on_its_pages(client, admin_user, other_company):
    foreign = Team.objects.create(company=other_company, name="Theirs")
    client.force_login(admin_user)
    assert client.get(reverse("team_edit", args=[foreign.pk])).status_code == 404
    assert client.post(reverse("team_delete", args=[foreign.pk])).status_code == 404
    assert Team.objects.filter(pk=foreign.pk).exists()
    assert "Theirs" not in client.get(reverse("teams")).content.decode()
