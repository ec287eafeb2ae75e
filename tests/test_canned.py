"""Canned replies: company-wide ones (admins manage them) and personal ones (each agent's
own, nobody else sees them); variables filled for a conversation; unknown variables refused
on save naming them; the Settings pages; never another company's."""

import pytest

from canned.models import CannedReply

from .factories import ClientFactory, ConversationFactory, UserFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/canned-replies/"


def _create(api, **data):
    payload = {"title": "Greeting", "shortcut": "greet", "body": "Hi {{client.first_name}}!"}
    payload.update(data)
    return api.post(URL, payload, format="json")


def test_an_agent_keeps_personal_replies_that_no_colleague_sees(api_for, agent_user, company):
    colleague = UserFactory(company=company, username="carol")
    response = _create(api_for(agent_user))
    assert response.status_code == 201, response.content
    assert response.json()["personal"] is True
    reply_id = response.json()["id"]

    theirs = api_for(colleague)
    assert theirs.get(URL).json()["results"] == []
    assert theirs.get(f"{URL}{reply_id}/").status_code == 404
    assert theirs.delete(f"{URL}{reply_id}/").status_code == 404
    # The same shortcut is free for the colleague's own reply.
    assert _create(theirs).status_code == 201


def test_only_admins_manage_the_company_replies(api_for, admin_user, agent_user):
    agent = api_for(agent_user)
    refused = _create(agent, personal=False)
    assert refused.status_code == 403
    assert not CannedReply.objects.exists()

    created = _create(api_for(admin_user), personal=False)
    assert created.status_code == 201
    reply_id = created.json()["id"]
    assert [row["id"] for row in agent.get(URL).json()["results"]] == [reply_id]  # all see it
    assert agent.patch(f"{URL}{reply_id}/", {"title": "x"}, format="json").status_code == 403
    assert agent.delete(f"{URL}{reply_id}/").status_code == 403
    assert CannedReply.objects.get().title == "Greeting"


def test_unknown_variables_are_refused_on_save_naming_them(admin_api):
    response = _create(admin_api, body="Hi {{client.nickname}}, from {{ agent.name }} {{x}}")
    assert response.status_code == 400
    message = response.json()["body"][0]
    assert "{{client.nickname}}" in message and "{{x}}" in message
    assert "{{agent.name}}" not in message.split("Known")[0]
    assert not CannedReply.objects.exists()


@pytest.mark.parametrize(
    "data, field",
    [
        ({"shortcut": "has space"}, "shortcut"),
        ({"shortcut": ""}, "shortcut"),
        ({"title": ""}, "title"),
        ({"body": "x" * 4001}, "body"),
        ({"body": "nul \x00 byte"}, "body"),
        ({"title": "nul \x00"}, "title"),
    ],
)
def test_bad_fields_are_a_400_naming_the_field(admin_api, data, field):
    response = _create(admin_api, **data)
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not CannedReply.objects.exists()


def test_a_duplicate_shortcut_is_a_400(admin_api):
    assert _create(admin_api).status_code == 201
    response = _create(admin_api, title="Other")
    assert response.status_code == 400
    assert "shortcut" in response.json()


def test_variables_are_filled_for_the_conversation(api_for, company):
    agent = UserFactory(company=company, username="bob", first_name="Bob", last_name="Stone")
    api = api_for(agent)
    conversation = ConversationFactory(
        company=company,
        client=ClientFactory(company=company, name="Олена Коваленко", phone="+380671234567"),
    )
    body = (
        "Hi {{client.first_name}} ({{client.name}}, {{client.phone}}), "
        "{{agent.name}} from {{company.name}} here. <b>&</b>"
    )
    reply_id = _create(api, body=body).json()["id"]

    rendered = api.post(f"{URL}{reply_id}/render/", {"conversation": conversation.pk})
    assert rendered.status_code == 200
    assert rendered.json()["body"] == (
        "Hi Олена (Олена Коваленко, +380671234567), Bob Stone from Acme here. <b>&</b>"
    )
    listed = api.get(URL, {"q": "gre", "conversation": conversation.pk}).json()["results"]
    assert listed[0]["rendered"] == rendered.json()["body"]


def test_rendering_for_another_companys_conversation_is_a_404(admin_api, company, other_company):
    reply_id = _create(admin_api).json()["id"]
    foreign = ConversationFactory(company=other_company)
    assert (
        admin_api.post(f"{URL}{reply_id}/render/", {"conversation": foreign.pk}).status_code == 404
    )
    assert admin_api.get(URL, {"conversation": foreign.pk}).status_code == 404
    assert admin_api.get(URL, {"conversation": "x"}).status_code == 400
    assert admin_api.post(f"{URL}{reply_id}/render/", {"conversation": "x"}).status_code == 400


def test_the_list_filters_by_shortcut_or_title(admin_api):
    _create(admin_api, shortcut="greet", title="Greeting")
    _create(admin_api, shortcut="bye", title="Regrets and goodbye")
    _create(admin_api, shortcut="thanks", title="Thank you")
    found = [row["shortcut"] for row in admin_api.get(URL, {"q": "gre"}).json()["results"]]
    assert found == ["bye", "greet"]  # by shortcut
    assert admin_api.get(URL, {"q": "\x00"}).status_code in (200, 400)


def test_the_settings_pages_add_edit_and_delete(client, admin_user, agent_user):
    client.force_login(agent_user)
    page = client.get("/settings/canned-replies/new/").content.decode()
    assert 'name="scope"' not in page  # agents add personal replies only
    response = client.post(
        "/settings/canned-replies/new/",
        {"title": "Hello", "shortcut": "hello", "body": "Hi {{client.first_name}}"},
    )
    assert response.status_code == 302
    reply = CannedReply.objects.get()
    assert reply.owner == agent_user

    bad = client.post(
        f"/settings/canned-replies/{reply.pk}/edit/",
        {"title": "Hello", "shortcut": "hello", "body": "Hi {{client.age}}"},
    )
    assert bad.status_code == 200
    assert "{{client.age}}" in bad.content.decode()
    reply.refresh_from_db()
    assert reply.body == "Hi {{client.first_name}}"

    listing = client.get("/settings/canned-replies/").content.decode()
    assert "/hello" in listing
    assert client.post(f"/settings/canned-replies/{reply.pk}/delete/").status_code == 302
    assert not CannedReply.objects.exists()


def test_an_agent_cannot_edit_the_company_replies_on_the_pages(client, admin_user, agent_user):
    reply = CannedReply.objects.create(
        company=admin_user.company, title="T", shortcut="t", body="b"
    )
    client.force_login(agent_user)
    assert client.get(f"/settings/canned-replies/{reply.pk}/edit/").status_code == 403
    assert client.post(f"/settings/canned-replies/{reply.pk}/delete/").status_code == 403
    assert CannedReply.objects.filter(pk=reply.pk).exists()
    client.force_login(admin_user)
    assert client.get(f"/settings/canned-replies/{reply.pk}/edit/").status_code == 200
